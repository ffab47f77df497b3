#!/usr/bin/env bash
# Creates .venv and installs the pinned requirements; a second run with unchanged requirements is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing requirements.txt into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date"
fi

# Fashion-MNIST (--config.data.name=fashion_mnist) comes from Debian's dataset-fashion-mnist, never from
# the internet. Best effort: without root, apt or its network the rest of the project works as before.
FMNIST_FILE=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST_FILE" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's dataset-fashion-mnist with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    (timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "setup: apt-get could not install dataset-fashion-mnist (no package network?); fashion_mnist stays unavailable"
  else
    echo "setup: fashion_mnist needs Debian's dataset-fashion-mnist; as root: apt-get update && apt-get install -y dataset-fashion-mnist"
  fi
fi
if [ -f "$FMNIST_FILE" ]; then
  # Writes TFDS's default data dir (~/tensorflow_datasets or $TFDS_DATA_DIR) once, ~30 s; then a no-op.
  log=$(mktemp)
  .venv/bin/python -m ae_jax.fashion_mnist 2>"$log" | sed 's/^/setup: /' \
    || echo "setup: preparing fashion_mnist failed: $(tail -n 1 "$log")"
  rm -f "$log"
fi
