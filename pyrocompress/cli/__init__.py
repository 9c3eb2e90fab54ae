"""The command line: ``pyrocompress demo | compress | select``."""

from pyrocompress.cli.app import main

__all__ = ["main"]
