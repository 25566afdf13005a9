"""Does the synthetic task need global context? Superseded by ``gcsearch bench proxy``, which
trains the baseline and context blocks under shared seeds and prints mean, seed std, modes,
the minimum detectable difference at n = 3 and seconds per trial (see docs/trusting-results.md).

Kept as a shortcut with the same defaults as before:
    python benchmarks/synthetic_gap.py --seeds 0,1,2 --jobs 2
is ``gcsearch bench proxy --task synthetic --seeds 0,1,2 --jobs 2``; any other flag is passed on.
"""

from __future__ import annotations

import sys

from gcsearch.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--task" not in args and "--space" not in args:
        args = ["--task", "synthetic", *args]
    sys.exit(main(["bench", "proxy", *args]))
