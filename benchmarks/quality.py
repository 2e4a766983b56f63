"""Single models against ensembles at equal compute, on mode coverage and image quality (issue #7).

    python benchmarks/quality.py [--quick | --smoke] [--out docs] [--work runs/bench-quality] [--workers 2]

The same as `gensemble bench quality`; the logic lives in `gensemble.bench`. The full run writes
docs/RESULTS.md and docs/results/quality.json; --quick (and --smoke) write RESULTS-quick.md and
results/quality-quick.json instead, so a smoke run never overwrites the real results.
"""

from __future__ import annotations

import sys

from gensemble.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "quality", *sys.argv[1:]]))
