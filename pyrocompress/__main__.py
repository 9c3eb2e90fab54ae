"""``python -m pyrocompress ...``: the command line, also as ``torchrun -m pyrocompress``."""

from pyrocompress.cli import main

if __name__ == "__main__":  # importing the module (pytest --doctest-modules) runs nothing
    raise SystemExit(main())
