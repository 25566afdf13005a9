"""``python -m gcsearch``."""

import sys

from gcsearch.cli import main

sys.exit(main())
