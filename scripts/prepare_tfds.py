"""Prepare a TFDS dataset as array_record on a connected machine: `prepare_tfds.py NAME --data_dir DIR`.

ae_jax never downloads at run time: it reads prepared datasets with `tfds.data_source`, which needs the
array_record format but not TensorFlow. Preparing is the one step that needs the network, and some
builders also need TensorFlow (e.g. to encode images) or apache-beam (large datasets):
`pip install tensorflow` or `pip install apache-beam` on the preparing machine if it asks.
The prepared DIR can then be copied to offline machines and used with `--config.data.tfds_dir=DIR`.
A failed run removes everything it wrote under DIR (partial downloads included).
`fashion_mnist` needs no network: it is prepared from Debian's package by `python -m ae_jax.fashion_mnist`,
which this script runs for that name.
"""

import argparse
import contextlib
import os
import pathlib
import shutil
import socket
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# TFDS retries a failed download 10 times with exponential backoff: 205 s before an offline machine
# gives up. Two retries still ride out a transient server error and fail within seconds offline.
DOWNLOAD_RETRIES = 2


def main(argv: list[str] | None = None) -> int:
    """Builds NAME under DIR; exit status 2 with a one-line message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="TFDS catalog name, optionally with config/version (mnist, mnist:3.0.1)")
    parser.add_argument("--data_dir", default="", help="where to write it (default: ~/tensorflow_datasets)")
    args = parser.parse_args(argv)

    if args.name.split(":")[0] == "fashion_mnist":
        sys.path.insert(0, str(ROOT))  # run as a script, the repository root is not on the path
        from ae_jax import fashion_mnist

        return fashion_mnist.main(["--data_dir", args.data_dir] if args.data_dir else [])

    import tensorflow_datasets as tfds  # slow import; after argparse so --help stays fast
    from tensorflow_datasets.core.download import downloader

    downloader.MAX_RETRIES = DOWNLOAD_RETRIES
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir or tfds.core.constants.DATA_DIR))
    before = _paths(data_dir)
    try:
        builder = tfds.builder(args.name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare()
    except KeyboardInterrupt:
        _remove_new(data_dir, before)
        print(f"interrupted: nothing of {args.name!r} was kept in {data_dir}", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - any failure ends with a one-line hint, not a traceback
        _remove_new(data_dir, before)
        print(f"error: preparing {args.name!r} in {data_dir} failed: {_explain(e, tfds)}; nothing it wrote "
              "was kept", file=sys.stderr)
        return 2
    print(f"prepared {args.name!r} in {builder.data_dir}")
    print(f"copy {data_dir} to the machine that trains and run with --config.data.name={args.name} "
          f"--config.data.tfds_dir={data_dir}")
    return 0


def _explain(e: Exception, tfds) -> str:
    """What went wrong and what to do, in one line."""
    import requests

    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, tfds.core.registered.DatasetNotFoundError):
        return "no such TFDS catalog name (see https://www.tensorflow.org/datasets/catalog/overview)"
    if _caused_by(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, socket.gaierror,
                      ConnectionError, TimeoutError)):
        return (f"it downloads the dataset and needs the network, which is unreachable ({type(e).__name__}: "
                f"{first}); run it on a connected machine and copy the data dir here")
    if isinstance(e, ModuleNotFoundError) and e.name:
        return f"this builder needs the Python module {e.name!r}: `pip install {e.name}` on the preparing machine"
    return f"{type(e).__name__}: {first}"


def _caused_by(e: BaseException, kinds: tuple[type, ...]) -> bool:
    """Whether e or an exception it was raised from is one of kinds."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kinds):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _paths(root: str) -> set[str]:
    """Every path under root, root included, without following links."""
    if not os.path.lexists(root):
        return set()
    found = {root}
    for parent, dirs, files in os.walk(root):
        found.update(os.path.join(parent, n) for n in dirs + files)
    return found


def _remove_new(root: str, before: set[str]) -> None:
    """Removes what appeared under root since `before`; what was there stays."""
    for path in sorted(_paths(root) - before):  # sorted: a new folder goes before what it holds
        if not os.path.lexists(path):
            continue  # inside a folder removed a moment ago
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


if __name__ == "__main__":
    sys.exit(main())
