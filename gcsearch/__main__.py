"""``python -m gcsearch``."""

from gcsearch.cli import run

run()
