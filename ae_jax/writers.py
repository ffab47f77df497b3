"""The one logging interface training code talks to: a W&B run (offline by default) or nothing."""

import io
import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

log = logging.getLogger(__name__)

STEP = "train/step"

# Set by the first W&B failure in this process; every writer opened after it is a NullWriter,
# so a broken W&B (say online without network) costs one warning, not one timeout per member.
_off_reason: str | None = None
# Set by the first online run that could not start: the rest of the process writes offline runs.
_online_failed = False
ONLINE_TIMEOUT_S = 10
# How often a run's local log reaches disk, so `wandb leet` shows a running member's curve (W&B's default: 15 s).
FLUSH_S = 2.0


class Writer(Protocol):
    """What training, sweep and report code may log; nothing else touches `wandb`."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None: ...

    def figure(self, name: str, fig: Any) -> None: ...

    def table(self, name: str, columns: list[str], rows: list[list]) -> None: ...

    def series(self, name: str, x_name: str, xs: Sequence[float], ys: Sequence[float]) -> None: ...

    def summary(self, values: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullWriter:
    """Accepts everything and writes nothing (figures are still closed)."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        pass

    def figure(self, name: str, fig: Any) -> None:
        _close_figure(fig)

    def table(self, name: str, columns: list[str], rows: list[list]) -> None:
        pass

    def series(self, name: str, x_name: str, xs: Sequence[float], ys: Sequence[float]) -> None:
        pass

    def summary(self, values: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass

    run_id: str | None = None
    folder: str | None = None


class WandbWriter:
    """One W&B run; the first exception from W&B turns this writer into a NullWriter."""

    def __init__(self, run: Any):
        self.run = run
        self.run_id: str | None = None
        self.folder: str | None = None  # the run's local folder (what `wandb sync` takes)
        # Earlier local folders of this run (a killed sweep's partial run), removed once this one is
        # complete: a resumed group logs its whole curve again (train.fit replays the checkpoint's chunks).
        self.superseded: list[Path] = []

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._guard(lambda run, wandb: run.log({STEP: int(step), **_plain(dict(values))}))

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        self._guard(lambda run, wandb: run.log(
            {STEP: int(step), **{k: wandb.Image(_to_uint8(v)) for k, v in images.items()}}))

    def figure(self, name: str, fig: Any) -> None:
        try:
            self._guard(lambda run, wandb: run.log({name: wandb.Image(_render(fig))}))
        finally:
            _close_figure(fig)

    def table(self, name: str, columns: list[str], rows: list[list]) -> None:
        self._guard(lambda run, wandb: run.log(
            {name: wandb.Table(columns=list(columns), data=[_plain(list(r)) for r in rows])}))

    def series(self, name: str, x_name: str, xs: Sequence[float], ys: Sequence[float]) -> None:
        """A curve ys(xs) as W&B history against its own step metric `x_name`, so W&B's native line chart
        of `name` overlays the same curve of every run (a spectrum, say), unlike a logged figure."""
        def log_all(run, wandb):
            run.define_metric(x_name)
            run.define_metric(name, step_metric=x_name)
            for x, y in zip(xs, ys):
                run.log({x_name: _plain(x), name: _plain(y)})
        self._guard(log_all)

    def summary(self, values: Mapping[str, Any]) -> None:
        self._guard(lambda run, wandb: run.summary.update(_plain(dict(values))))

    def close(self) -> None:
        def finish(run, wandb):
            run.finish()
            for old in self.superseded:  # only once this run, which holds their curves, is complete
                shutil.rmtree(old, ignore_errors=True)
        self._guard(finish)
        self.run = None

    def _guard(self, call) -> None:
        if self.run is None:
            return
        try:
            import wandb
            call(self.run, wandb)
        except Exception as e:  # W&B trouble never stops training.
            _turn_off(e)
            run, self.run = self.run, None
            try:
                run.finish(exit_code=1)
            except Exception:
                pass


def open_writer(wandb_cfg: Any, *, workdir: str, name: str, group: str, config: Mapping[str, Any],
                job_type: str = "member", tags: Sequence[str] = (), run_id: str | None = None) -> Writer:
    """A W&B run under WORKDIR/wandb/ as `wandb_cfg` (`config.wandb` or a dict) asks, else a NullWriter.

    `run_id` makes the run deterministic: opened again (a resumed sweep), it continues the same run. An
    online run that cannot start (no API key, no network within ONLINE_TIMEOUT_S) falls back to an
    offline run, with one warning: nothing is lost, `wandb sync` uploads it later."""
    global _online_failed
    mode = _field(wandb_cfg, "mode", "offline")
    # The user's WANDB_MODE=disabled wins too, so that such a run never even imports wandb.
    if mode == "disabled" or os.environ.get("WANDB_MODE") == "disabled" or _off_reason is not None:
        return NullWriter()
    writer = WandbWriter(None)
    # a killed run's local folders with this id, before this run adds its own
    partial = local_runs(workdir, run_id) if run_id else []
    try:
        os.makedirs(workdir, exist_ok=True)
        _point_wandb_into(workdir)
        import wandb
        if mode == "online" and (_online_failed or not _has_api_key(wandb)):
            if not _online_failed:
                log.warning("W&B online: no API key (wandb login); these runs are written offline instead "
                            "(`wandb sync` uploads them later)")
            _online_failed, mode = True, "offline"
        kwargs = dict(project=_field(wandb_cfg, "project", "ae_jax"), entity=_field(wandb_cfg, "entity", "") or None,
                      dir=workdir, name=name, group=group, job_type=job_type, tags=list(tags),
                      config=_plain(_as_dict(config)), reinit="create_new", id=run_id,
                      resume="allow" if run_id else None)
        flush = ({"x_transaction_log_flush_interval": FLUSH_S}
                 if "x_transaction_log_flush_interval" in getattr(wandb.Settings, "model_fields", {}) else {})
        try:
            writer.run = wandb.init(mode=mode, settings=wandb.Settings(init_timeout=ONLINE_TIMEOUT_S, **flush),
                                    **kwargs)
        except Exception as e:  # noqa: BLE001 - any online failure: keep the data offline
            if mode != "online":
                raise
            log.warning("W&B online failed (%s); these runs are written offline instead (`wandb sync` "
                        "uploads them later)", f"{type(e).__name__}: {e}".splitlines()[0])
            _online_failed = True
            writer.run = wandb.init(mode="offline", settings=wandb.Settings(**flush), **kwargs)
    except Exception as e:
        _turn_off(e)
        return NullWriter()
    writer.run_id = run_id or getattr(writer.run, "id", None)
    try:
        writer.folder = os.path.relpath(os.path.dirname(writer.run.dir), workdir)
    except Exception:  # noqa: BLE001 - only a pointer for the results line
        writer.folder = None
    # Curves are drawn against the training step, not W&B's own call counter.
    writer._guard(lambda run, wandb: (run.define_metric(STEP),
                                      run.define_metric("*", step_metric=STEP)))
    if writer.run is None:
        return NullWriter()
    own = (Path(workdir) / writer.folder).resolve() if writer.folder else None
    partial = [p for p in partial if p.resolve() != own]
    if mode == "offline" or _online_failed:
        # A resumed offline run is a new local folder with the same id, and logs everything again: the old
        # folders go when it is complete, so the workdir keeps one folder, and `wandb sync` one upload, per run.
        writer.superseded = partial
    return writer


def local_runs(workdir: str | os.PathLike, run_id: str) -> list[Path]:
    """The offline folders of run `run_id` under WORKDIR/wandb/, oldest first (their names start with
    the second they were opened; W&B appends -1, -2, ... to a second run opened in the same second)."""
    root = Path(workdir) / "wandb"
    if not root.is_dir():
        return []
    found = [*root.glob(f"offline-run-*-{run_id}"), *root.glob(f"offline-run-*-{run_id}-[0-9]*")]
    return sorted(found, key=lambda p: (p.name[:len("offline-run-YYYYmmdd_HHMMSS")], len(p.name), p.name))


def read_history(folder: str | os.PathLike) -> list[dict]:
    """The history rows of a local run folder, read by W&B's own reader (`wandb leet inspect --json`)."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    cmd = [str(wandb_cli)] if wandb_cli.is_file() else [sys.executable, "-m", "wandb"]
    out = subprocess.run([*cmd, "leet", "inspect", "--json", str(folder)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {folder}: {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
    rows = []
    for line in out.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a torn last record of a killed run
            continue
        if isinstance(record, dict) and record.get("type") == "history":
            rows.append(record["history"].get("item", {}))
    return rows


def _has_api_key(wandb) -> bool:
    """Credentials present (env or `wandb login`), checked locally: no prompt, no network."""
    try:
        return bool(os.environ.get("WANDB_API_KEY")) or bool(wandb.login(prompt=False, verify=False))
    except Exception:  # noqa: BLE001 - unreadable settings: treat as no key
        return False


def image_grid(images_NHWC: np.ndarray, ncols: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tiles N images (N, H, W[, C]) row by row into one (H', W'[, C]) panel, `pad` pixels apart."""
    x = np.asarray(images_NHWC, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[0] == 0:
        raise ValueError(f"image_grid: expected a non-empty (N, H, W[, C]) array, got shape {x.shape}")
    gray = x.ndim == 3
    if gray:
        x = x[..., None]
    n, h, w, c = x.shape
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), pad_value, np.float32)
    for i in range(n):
        r, q = divmod(i, ncols)
        grid[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = x[i]
    return grid[..., 0] if gray else grid


# ----------------------------------------------------------------------------- helpers

def _turn_off(error: BaseException) -> None:
    global _off_reason
    if _off_reason is None:
        _off_reason = f"{type(error).__name__}: {error}".splitlines()[0]
        log.warning("W&B logging is off for the rest of this process (%s); training goes on without it",
                    _off_reason)


def _point_wandb_into(workdir: str) -> None:
    """Keeps W&B's files (logs, cache, settings) in the workdir, not in ~/; the user's settings win."""
    root = os.path.join(os.path.abspath(workdir), "wandb")
    defaults = {
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DIR": os.path.abspath(workdir),
        "WANDB_DATA_DIR": os.path.join(root, ".data"),
        "WANDB_CACHE_DIR": os.path.join(root, ".cache"),
        "WANDB_CONFIG_DIR": os.path.join(root, ".config"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def _field(cfg: Any, key: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _as_dict(config: Any) -> dict:
    # A ConfigDict handed to wandb.init is silently logged as an empty config.
    return config.to_dict() if hasattr(config, "to_dict") else dict(config or {})


def _plain(value: Any) -> Any:
    """JAX/NumPy scalars and arrays as Python numbers and lists, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    return value


def _to_uint8(image: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(image, dtype=np.float32))
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def _render(fig: Any) -> Any:
    """The figure as a PIL image: wandb.Image(fig) itself wants pyplot, which a bare Figure lacks."""
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    buf.seek(0)
    return Image.open(buf)


def _close_figure(fig: Any) -> None:
    # Only pyplot keeps figures alive; a bare matplotlib Figure needs no closing.
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
