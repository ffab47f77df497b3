"""Fashion-MNIST prepared offline from Debian's `dataset-fashion-mnist`: `python -m ae_jax.fashion_mnist`.

The package installs the four original IDX files under /usr/share/datasets/fashion-mnist. This module
feeds them to TFDS's own `fashion_mnist` builder (same name, version, features, PNG images, example keys
and so on-disk order), written as array_record, so `tfds.data_source("fashion_mnist")` and
`--config.data.name=fashion_mnist` read it like any prepared TFDS dataset, without TensorFlow and without
the network. Images go in as PIL images: TFDS encodes those with PIL, numpy arrays it encodes with
TensorFlow.
"""

import argparse
import contextlib
import gzip
import io
import os
import sys
import tempfile

import numpy as np

NAME = "fashion_mnist"
IDX_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL = "apt-get update && apt-get install -y dataset-fashion-mnist"
PREPARE = "python -m ae_jax.fashion_mnist"
# split -> (images, labels), the file names of the original release (gzipped, as Debian ships them).
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


class IdxError(ValueError):
    """An IDX file that is missing, truncated or not the shape Fashion-MNIST has."""


def missing_files(idx_dir: str | None = None) -> list[str]:
    """The IDX files of `FILES` absent from idx_dir (default: IDX_DIR)."""
    idx_dir = idx_dir or IDX_DIR
    return [os.path.join(idx_dir, f) for pair in FILES.values() for f in pair
            if not os.path.isfile(os.path.join(idx_dir, f))]


def install_hint(idx_dir: str | None = None) -> str:
    """What to do when idx_dir (default: IDX_DIR) lacks the files, in one line."""
    if not idx_dir or idx_dir == IDX_DIR:
        return f"install Debian's dataset-fashion-mnist as root: `{INSTALL}`"
    return f"put {', '.join(f for pair in FILES.values() for f in pair)} in {idx_dir}"


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes as a uint8 array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise IdxError(f"IDX file {path}: cannot read it ({e})") from None
    # Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise IdxError(f"IDX file {path}: not an unsigned-byte IDX file (header {raw[:4].hex() or 'empty'})")
    ndim, offset = raw[3], 4 + 4 * raw[3]
    if len(raw) < offset:
        raise IdxError(f"IDX file {path}: truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:offset], ">u4"))
    if len(raw) - offset != int(np.prod(dims)):
        raise IdxError(f"IDX file {path}: holds {len(raw) - offset} bytes of data for shape {dims}")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def read_split(split: str, idx_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28, 1), labels int64 (N,)) of `split` in the files' order."""
    image_file, label_file = (os.path.join(idx_dir or IDX_DIR, f) for f in FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxError(f"IDX file {image_file}: images of shape {images.shape[1:]}, expected (28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise IdxError(f"IDX file {label_file}: {labels.shape} labels for {len(images)} images")
    if len(labels) and labels.max() >= 10:
        raise IdxError(f"IDX file {label_file}: label {labels.max()} outside the 10 classes")
    return images[..., None], labels.astype(np.int64)


def _builder_class():
    """TFDS's own FashionMNIST with the downloads replaced by arrays read here (imported late: slow)."""
    from PIL import Image
    from tensorflow_datasets.image_classification import mnist

    class DebianFashionMNIST(mnist.FashionMNIST, skip_registration=True):
        """Writes what `fashion_mnist` would, from `splits`; `fashion_mnist` itself reads it back."""

        name = NAME  # the registered builder finds the files under this name and its VERSION

        def __init__(self, *, splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, **kwargs):
            self._splits = splits
            super().__init__(**kwargs)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(*arrays) for split, arrays in self._splits.items()}

        def _generate_examples(self, images, labels):
            # Keys are the files' indices, as in TFDS's builder: the same keys give the same shuffle.
            for i, (image, label) in enumerate(zip(images, labels)):
                yield i, {"image": Image.fromarray(image[..., 0]), "label": int(label)}

    return DebianFashionMNIST


def builder(data_dir: str | None = None, splits: dict | None = None):
    """The builder of `fashion_mnist` in data_dir (default: TFDS's, $TFDS_DATA_DIR or
    ~/tensorflow_datasets); it can write only when given `splits` (split -> (images, labels))."""
    return _builder_class()(splits=splits, data_dir=data_dir or None, file_format="array_record")


def prepare(data_dir: str | None = None, idx_dir: str | None = None) -> tuple[str, bool]:
    """(the dataset's directory, whether it was written now): a no-op when already prepared; IdxError
    (nothing written) when idx_dir (default: IDX_DIR) lacks a file or holds a bad one."""
    import tensorflow_datasets as tfds

    b = builder(data_dir)
    if b.is_prepared():
        return os.fspath(b.data_dir), False
    idx_dir = idx_dir or IDX_DIR
    missing = missing_files(idx_dir)
    if missing:
        raise IdxError(f"{missing[0]} does not exist: {install_hint(idx_dir)}")
    splits = {split: read_split(split, idx_dir) for split in FILES}  # every file checked before writing
    # Nothing to download: a throwaway download dir keeps TFDS's empty `downloads/` out of data_dir,
    # and without the GCS check nothing touches the network. TFDS writes into an `incomplete.*` folder
    # that it renames when done and removes on an exception. Its stdout says "Downloading and
    # preparing ... Unknown size", which is not what happens: dropped (progress bars stay, on stderr).
    with tempfile.TemporaryDirectory(prefix="ae_jax_fmnist_") as tmp, contextlib.redirect_stdout(io.StringIO()):
        builder(data_dir, splits).download_and_prepare(
            download_dir=tmp, download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return os.fspath(b.data_dir), True


def main(argv: list[str] | None = None) -> int:
    """Prepares fashion_mnist once; exit status 2 with a one-line message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="", help="TFDS data dir to write (default: TFDS's, "
                        "$TFDS_DATA_DIR or ~/tensorflow_datasets, where --config.data.name=fashion_mnist looks)")
    parser.add_argument("--idx_dir", default=IDX_DIR, help=f"the four IDX files (default: {IDX_DIR}, where "
                        "Debian's dataset-fashion-mnist puts them)")
    args = parser.parse_args(argv)
    if not builder(args.data_dir).is_prepared():
        print(f"preparing {NAME} from {args.idx_dir} (offline, ~30 s)", flush=True)
    try:
        where, written = prepare(args.data_dir, args.idx_dir)
    except IdxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'prepared' if written else 'already prepared:'} {NAME} in {where}")
    if args.data_dir:
        print(f"read it with --config.data.name={NAME} --config.data.tfds_dir={args.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
