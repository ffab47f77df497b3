"""The base config every config file starts from, its validation, and the sweep grammar."""

import itertools
import math
from typing import Any, Iterable, Sequence

import ml_collections

from ae_jax import objectives
from ae_jax.errors import ConfigError

# Names of plug-in registries (model kinds, code stages, loss terms, corruptions, activations,
# optimisers) are not listed here: `allowed(key)` reads them from the registries, so a registered
# variant is a valid config value at once.
OUTPUTS = ("linear", "sigmoid")
# float32 matmul passes (jax.default_matmul_precision): GPUs and TPUs default to fewer bits than float32
# (TF32 / bfloat16), which moved closed-form checks by 2e-5 on an H200; `highest` is float32 everywhere.
MATMUL_PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")
MANIFOLD_KINDS = ("linear", "sphere", "swiss_roll")
SCALES = ("none", "minmax", "standardize")
DATA_LOADERS = ("auto", "device", "grain")
WANDB_MODES = ("offline", "online", "disabled")

# Config blocks contributed by plug-in variants: {block name: {key: default}}. A variant module adds its
# block here when imported (e.g. from the config file that uses it), and base_config() then has it.
BLOCKS: dict[str, dict[str, Any]] = {}


def allowed(key: str) -> tuple:
    """The values a name-valued config key accepts, read from the registry that implements them."""
    from ae_jax import code_stages, layers, models, train  # config is imported by them, so not at the top

    if key == "model.kind":
        return tuple(models.MODEL_KINDS)
    if key == "model.activation":
        return tuple(layers.ACTIVATIONS)
    if key == "model.code_activation":
        return ("",) + tuple(layers.ACTIVATIONS)
    if key == "noise.kind":
        return tuple(objectives.NOISES)
    if key == "train.optimizer":
        return tuple(train.OPTIMIZERS)
    if key == "train.schedule":
        return tuple(train.SCHEDULES)
    entries = (*objectives.LOSS_TERMS.values(), *code_stages.CODE_STAGES.values())
    return ("none",) + tuple(dict.fromkeys(e.chooses[1] for e in entries if e.chooses and e.chooses[0] == key))


def variant_of(c: ml_collections.ConfigDict) -> list[str]:
    """What kind of autoencoder a member is, as tags: model kind, corruption, code stage and every loss
    term it switches on (`plain` when none); W&B tags, the report and the experiments all use this."""
    from ae_jax import models

    tags = [c.model.kind]
    if c.noise.kind != "none":
        tags.append(f"denoising:{c.noise.kind}")
    stage = models.code_stage_of(c)
    if stage != "plain":
        tags.append(models.CODE_STAGES[stage].tag or stage)
    for name, _ in objectives.objective_spec(c).terms:
        term = objectives.LOSS_TERMS[name]
        tag = term.tag if term.tag is not None else (f"penalty:{name}" if not term.weight else name)
        if tag:
            tags.append(tag)
    if len(tags) == 1:
        tags.append("plain")
    return tags


def base_config() -> ml_collections.ConfigDict:
    """Every key a config may set, at its default; the blocks that are off do nothing."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.name = ""  # sweep name; defaults to the config file's stem

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # digits | manifold | npz:PATH | any TFDS catalog name
    c.data.test_fraction = 0.25  # digits: 1347 train / 450 test
    c.data.split_seed = 0
    c.data.n_train = 0  # 0 = all; k > 0 keeps the first k training examples
    c.data.scale = "none"  # none | minmax | standardize (fitted on train)
    c.data.tfds_dir = ""  # data_dir of a prepared TFDS dataset
    # Where training batches come from (ae_jax/stream.py): the whole train set on the device, or
    # grain streaming host batches to it; both give the same numbers. auto streams above the threshold.
    c.data.loader = "auto"  # auto | device | grain
    c.data.stream_above_mb = 4096.0
    c.data.read_threads = 2  # grain: threads gathering batches on the host (0: the main thread)
    c.data.prefetch = 2  # grain: transfers of batches read ahead on the host
    c.data.transfer_mb = 16.0  # grain: at most this much batch data per host-to-device transfer
    c.data.manifold = ml_collections.ConfigDict()
    c.data.manifold.kind = "sphere"  # linear | sphere | swiss_roll
    c.data.manifold.intrinsic_dim = 4
    c.data.manifold.ambient_dim = 32
    c.data.manifold.n_train = 2000
    c.data.manifold.n_test = 500
    c.data.manifold.noise = 0.0

    c.model = ml_collections.ConfigDict()
    c.model.kind = "mlp"  # mlp | conv | fullconv (stride 1, no dense layer: depth, width, code_size = channels)
    c.model.code_size = 32
    c.model.depth = 0
    c.model.width = 256
    c.model.activation = "relu"
    c.model.code_activation = ""  # "" = same as activation
    c.model.output = "linear"  # linear (squared error) | sigmoid (Bernoulli cross-entropy)
    c.model.channels = (16, 32)
    c.model.kernel_size = 3
    c.model.tied = False  # mlp depth 0: decoder weight = encoder weight transposed, own biases (Rifai et al.)
    c.model.matmul_precision = "highest"  # highest (float32) | default (the accelerator's fast path, e.g. TF32) | ...

    c.train = ml_collections.ConfigDict()
    c.train.steps = 2000
    c.train.batch_size = 128
    c.train.learning_rate = 1e-3
    c.train.optimizer = "adam"
    c.train.schedule = "constant"  # constant | cosine (decays to 0 at the last step)
    c.train.weight_decay = 0.0  # L2 penalty lambda * sum ||W||^2 added to the loss
    c.train.log_every = 100
    c.train.checkpoint_seconds = 60.0  # save a running group at most this often (0: every chunk)
    # Members whose code sizes (and widths) lie in the same power-of-`pack_ratio` bucket share one
    # masked program: fewer compilations, at most pack_ratio x the compute of the smallest (0: off).
    c.train.pack_ratio = 4.0
    # Keep each finished member's parameters in WORKDIR/members/ (what ae_jax.store.load reads back)
    c.train.save_params = True

    c.noise = ml_collections.ConfigDict()
    c.noise.kind = "none"
    c.noise.level = 0.0

    c.sparsity = ml_collections.ConfigDict()
    c.sparsity.kind = "none"
    c.sparsity.weight = 0.0
    c.sparsity.target = 0.05
    c.sparsity.k = 0
    c.sparsity.aux_k = 0  # top-k: dead-unit auxiliary loss over this many dead units (0 = off)
    c.sparsity.aux_weight = 1.0 / 32
    c.sparsity.dead_steps = 200  # top-k: a unit silent this many steps counts as dead

    c.contractive = ml_collections.ConfigDict()
    c.contractive.weight = 0.0

    c.penalty = ml_collections.ConfigDict({name: 0.0 for name in objectives.penalty_names()})  # weights; 0 = off

    c.vae = ml_collections.ConfigDict()
    c.vae.enabled = False
    c.vae.beta = 1.0
    c.vae.active_threshold = 0.01

    c.diagnostics = ml_collections.ConfigDict()
    c.diagnostics.seed = 0  # the probes (noise, uniform samples, points) every member is measured on
    c.diagnostics.noise_std = 0.1
    c.diagnostics.jac_points = 100
    c.diagnostics.ood_samples = 1000
    c.diagnostics.attractor_points = 100
    c.diagnostics.attractor_iters = 100
    c.diagnostics.attractor_radius = 0.25  # fraction of the starting perturbation's norm
    c.diagnostics.probe = True

    c.wandb = ml_collections.ConfigDict()
    c.wandb.mode = "offline"
    c.wandb.project = "ae_jax"
    c.wandb.entity = ""
    c.wandb.images = True
    for block, defaults in BLOCKS.items():
        c[block] = ml_collections.ConfigDict(defaults)
    return c


# ----------------------------------------------------------------------------- sweep grammar

Overrides = dict[str, Any]


def sweep(key: str, values: Iterable[Any]) -> list[Overrides]:
    """One axis: `sweep("model.code_size", [8, 16])` -> [{key: 8}, {key: 16}]."""
    return [{key: v} for v in values]


def product(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Every combination of the axes, the last varying fastest."""
    return [_merge(combo) for combo in itertools.product(*axes)]


def zipped(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Axes taken in lock-step; they must have equal lengths."""
    lengths = {len(a) for a in axes}
    if len(lengths) > 1:
        raise ConfigError(f"sweep: zipped axes have different lengths {sorted(lengths)}")
    return [_merge(combo) for combo in zip(*axes)]


def _merge(parts: Iterable[Overrides]) -> Overrides:
    out: Overrides = {}
    for p in parts:
        out.update(p)
    return out


def check_flag_keys(base: ml_collections.ConfigDict, argv: Sequence[str]) -> None:
    """A `--config.KEY=VALUE` flag whose KEY the config lacks is a ConfigError naming it (before absl's
    own, less helpful message)."""
    flat = flatten(base.to_dict())
    for arg in argv:
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=", 1)[0]
            if key not in flat and not any(k.startswith(key + ".") for k in flat):
                raise ConfigError(f"--config.{key}: no such config key (every key is in "
                                  f"ae_jax/config.py:base_config)")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Overrides) -> ml_collections.ConfigDict:
    """A copy of `config` with flat `a.b.c` keys set; an unknown key is a ConfigError."""
    c = ml_collections.ConfigDict(config.to_dict())
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                raise ConfigError(f"sweep override '{key}': no such config key")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"sweep override '{key}': no such config key")
        old = node[leaf]
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            node[leaf] = value
        except TypeError:  # ml_collections' own message quotes the value raw (a newline in it breaks the line)
            raise ConfigError(f"sweep override '{key}': {value!r} has the wrong type (expected "
                              f"{type(old).__name__}, got {type(value).__name__})") from None
    return c


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------- validation

def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config.{key}: {message}")


def _int(c, key, lo, hi=None):
    v = get(c, key)
    _check(isinstance(v, int) and not isinstance(v, bool), key, f"must be an integer, got {v!r}")
    _check(v >= lo and (hi is None or v <= hi), key,
           f"must be in [{lo}, {'inf' if hi is None else hi}], got {v}")


def _float(c, key, lo, hi=None, lo_open=False):
    v = get(c, key)
    _check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), key,
           f"must be a finite number, got {v!r}")
    bad_lo = v <= lo if lo_open else v < lo
    _check(not bad_lo and (hi is None or v <= hi), key,
           f"must be in {'(' if lo_open else '['}{lo}, {'inf' if hi is None else hi}], got {v}")


def _choice(c, key, allowed):
    v = get(c, key)
    _check(v in allowed, key, f"must be one of {', '.join(repr(a) for a in allowed)}, got {v!r}")


def get(c, key: str) -> Any:
    """The value at dotted `key` of a ConfigDict or nested dict (`get(c, "model.code_size")`)."""
    node = c
    for part in key.split("."):
        node = node[part]
    return node



def validate(c: ml_collections.ConfigDict) -> None:
    """Every value in range, every name known; raises ConfigError naming the key."""
    _int(c, "seed", 0, 2**31 - 1)
    _float(c, "data.test_fraction", 0.0, 1.0, lo_open=True)
    _check(c.data.test_fraction < 1.0, "data.test_fraction", "must be below 1")
    _int(c, "data.split_seed", 0)
    _int(c, "data.n_train", 0)
    _choice(c, "data.scale", SCALES)
    _check(isinstance(c.data.name, str) and c.data.name != "", "data.name", "must be a non-empty string")
    _choice(c, "data.loader", DATA_LOADERS)
    _float(c, "data.stream_above_mb", 0.0)
    _int(c, "data.read_threads", 0, 256)
    _int(c, "data.prefetch", 1, 64)
    _float(c, "data.transfer_mb", 0.0, lo_open=True)
    _choice(c, "data.manifold.kind", MANIFOLD_KINDS)
    _int(c, "data.manifold.intrinsic_dim", 1)
    _int(c, "data.manifold.ambient_dim", 1)
    _check(c.data.manifold.ambient_dim >= c.data.manifold.intrinsic_dim + (c.data.manifold.kind != "linear"),
           "data.manifold.ambient_dim", "must exceed intrinsic_dim (curved kinds need one more)")
    _int(c, "data.manifold.n_train", 2)
    _int(c, "data.manifold.n_test", 1)
    _float(c, "data.manifold.noise", 0.0)

    _choice(c, "model.kind", allowed("model.kind"))
    _int(c, "model.code_size", 1, 1 << 16)
    _int(c, "model.depth", 0, 64)
    _int(c, "model.width", 1, 1 << 16)
    _choice(c, "model.activation", allowed("model.activation"))
    _choice(c, "model.code_activation", allowed("model.code_activation"))
    _choice(c, "model.output", OUTPUTS)
    _choice(c, "model.matmul_precision", MATMUL_PRECISIONS)
    _check(isinstance(c.model.channels, tuple) and len(c.model.channels) >= 1
           and all(isinstance(ch, int) and ch >= 1 for ch in c.model.channels),
           "model.channels", f"must be a non-empty tuple of positive integers, got {c.model.channels!r}")
    _int(c, "model.kernel_size", 1, 15)
    _check(isinstance(c.model.tied, bool), "model.tied", f"must be True or False, got {c.model.tied!r}")
    if c.model.tied:
        _check(c.model.kind == "mlp" and c.model.depth == 0, "model.tied",
               f"tied weights need model.kind='mlp' and model.depth=0, got {c.model.kind!r} at depth {c.model.depth}")

    _int(c, "train.steps", 1)
    _int(c, "train.batch_size", 1)
    _float(c, "train.learning_rate", 0.0, lo_open=True)
    _choice(c, "train.optimizer", allowed("train.optimizer"))
    _choice(c, "train.schedule", allowed("train.schedule"))
    _float(c, "train.weight_decay", 0.0)
    _int(c, "train.log_every", 1)
    _float(c, "train.checkpoint_seconds", 0.0)
    _float(c, "train.pack_ratio", 0.0)
    _check(isinstance(c.train.save_params, bool), "train.save_params", "must be True or False")
    _check(c.train.pack_ratio == 0 or c.train.pack_ratio > 1, "train.pack_ratio",
           f"must be 0 (off) or above 1, got {c.train.pack_ratio}")

    _choice(c, "noise.kind", allowed("noise.kind"))
    _float(c, "noise.level", 0.0)
    if c.noise.kind in ("mask", "salt_pepper"):
        _float(c, "noise.level", 0.0, 1.0)

    _choice(c, "sparsity.kind", allowed("sparsity.kind"))
    _float(c, "sparsity.weight", 0.0)
    _float(c, "sparsity.target", 0.0, 1.0, lo_open=True)
    _check(c.sparsity.target < 1.0, "sparsity.target", "must be below 1")
    _int(c, "sparsity.k", 0)
    _int(c, "sparsity.aux_k", 0)
    _float(c, "sparsity.aux_weight", 0.0)
    _int(c, "sparsity.dead_steps", 1)
    if c.sparsity.kind == "topk":
        _check(1 <= c.sparsity.k <= c.model.code_size, "sparsity.k",
               f"must be between 1 and model.code_size={c.model.code_size}, got {c.sparsity.k}")
        _check(c.sparsity.aux_k <= c.model.code_size, "sparsity.aux_k",
               f"must be at most model.code_size={c.model.code_size}, got {c.sparsity.aux_k}")
    if c.sparsity.kind == "kl":
        _check(c.model.code_activation == "sigmoid" or (
            c.model.code_activation == "" and c.model.activation == "sigmoid"),
            "sparsity.kind", "'kl' needs sigmoid codes: set model.code_activation='sigmoid'")

    _float(c, "contractive.weight", 0.0)
    for name in objectives.penalty_names():
        _float(c, f"penalty.{name}", 0.0)
    _check(isinstance(c.vae.enabled, bool), "vae.enabled", "must be True or False")
    _float(c, "vae.beta", 0.0)
    _float(c, "vae.active_threshold", 0.0)
    if c.vae.enabled:
        _check(c.sparsity.kind in ("none", "l1"), "sparsity.kind",
               f"{c.sparsity.kind!r} cannot be combined with vae.enabled (a Gaussian code is not sparse)")

    _int(c, "diagnostics.seed", 0, 2**31 - 1)
    _float(c, "diagnostics.noise_std", 0.0, lo_open=True)
    _int(c, "diagnostics.jac_points", 1)
    _int(c, "diagnostics.ood_samples", 2)
    _int(c, "diagnostics.attractor_points", 1)
    _int(c, "diagnostics.attractor_iters", 1)
    _float(c, "diagnostics.attractor_radius", 0.0, lo_open=True)

    _choice(c, "wandb.mode", WANDB_MODES)


def check_arg(arg: str | None, allowed: Sequence[str], path: str) -> list[str]:
    """The comma-separated parts of a config file's `:ARG`, each one of `allowed`; `path` is the file."""
    parts = [p for p in (arg or "").split(",") if p]
    bad = [p for p in parts if p not in allowed]
    if bad:
        import os

        raise ConfigError(f"--config={os.path.relpath(path)}:{arg}: unknown argument {bad[0]!r}; "
                          f"allowed: {' | '.join(allowed)} (or none)")
    return parts
