"""Prepare a TFDS dataset as array_record on a connected machine: `prepare_tfds.py NAME --data_dir DIR`.

ae_jax never downloads at run time: it reads prepared datasets with `tfds.data_source`, which needs the
array_record format but not TensorFlow. Preparing is the one step that needs the network, and some
builders also need TensorFlow (e.g. to encode images) or apache-beam (large datasets):
`pip install tensorflow` or `pip install apache-beam` on the preparing machine if it asks.
The prepared DIR can then be copied to offline machines and used with `--config.data.tfds_dir=DIR`.
"""

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Builds NAME under DIR; exit status 2 with a one-line message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="TFDS catalog name, optionally with config/version (mnist, mnist:3.0.1)")
    parser.add_argument("--data_dir", default="", help="where to write it (default: ~/tensorflow_datasets)")
    args = parser.parse_args(argv)

    import tensorflow_datasets as tfds  # slow import; after argparse so --help stays fast

    data_dir = args.data_dir or tfds.core.constants.DATA_DIR
    try:
        builder = tfds.builder(args.name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - any failure ends with a one-line hint, not a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"error: preparing {args.name!r} in {data_dir} failed ({type(e).__name__}: {first}); it needs "
              "the network, and some builders need `pip install tensorflow` or apache-beam", file=sys.stderr)
        return 2
    print(f"prepared {args.name!r} in {builder.data_dir}")
    print(f"copy {data_dir} to the machine that trains and run with --config.data.name={args.name} "
          f"--config.data.tfds_dir={data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
