"""``python -m pyrocompress ...``: the command line, also as ``torchrun -m pyrocompress``."""

from pyrocompress.cli import main

raise SystemExit(main())
