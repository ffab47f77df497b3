#!/usr/bin/env bash
# The GPU path end to end on a machine whose python already has jax[cuda] (no .venv, no network):
# the benchmark (its quickstart part a third of the sweep: seed 0), the numerics tests under the
# accelerator, and the quickstart smoke with its report.
# Usage: bash benchmarks/gpu_check.sh OUTDIR [PYTHON]   (everything it measures lands in OUTDIR)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_check.sh OUTDIR [PYTHON]}; py=${2:-python3}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
unset JAX_PLATFORMS
"$py" -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())" 2>&1 | tee "$out/versions.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$out/versions.txt" 2>&1

# model.matmul_precision: float32 for every part, then the GPU's own fast path (TF32) for the compute-bound ones.
for run in "highest 230 engine,peak,memory,fashion" "default 90 peak,fashion"; do
  read -r prec limit parts <<< "$run"
  echo "== bench, matmul precision $prec: $parts"
  timeout "$limit" "$py" -m ae_jax.bench --matmul_precision=$prec --parts=$parts \
    > "$out/bench_$prec.json" 2> "$out/bench_$prec.err"
  echo "bench rc=$?"; tail -c 1500 "$out/bench_$prec.err"; head -c 1200 "$out/bench_$prec.json"
done
echo "== bench, quickstart part (seed 0: 32 of 96 members)"
timeout 240 "$py" -m ae_jax.bench --parts=quickstart --quickstart_only='*seed=0' \
  > "$out/bench_quickstart.json" 2> "$out/bench_quickstart.err"
echo "bench rc=$?"; tail -c 1500 "$out/bench_quickstart.err"; head -c 1500 "$out/bench_quickstart.json"

# The tests pin JAX_PLATFORMS=cpu by default; here they run on the GPU (closed forms at 1e-5 tolerances).
echo "== tests on gpu"
JAX_PLATFORMS=cuda timeout 300 "$py" -m pytest -q --no-header -p no:cacheprovider \
  tests/test_train.py tests/test_variants.py tests/test_diagnostics.py tests/test_experiments_linear.py \
  -k "not golden and not shard" > "$out/tests.txt" 2>&1; echo "tests rc=$?"; tail -n 15 "$out/tests.txt"

echo "== quickstart smoke on gpu"
qs=$(mktemp -d)/quickstart_smoke
timeout 100 "$py" -m ae_jax.sweep --config=configs/quickstart.py:smoke --workdir="$qs" > "$out/quickstart.txt" 2>&1
echo "sweep rc=$?"; cp "$qs/report.md" "$out/quickstart_report.md" 2>/dev/null; tail -n 25 "$out/quickstart.txt"
