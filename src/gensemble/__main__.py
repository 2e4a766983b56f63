"""`python -m gensemble ARGS` is `gensemble ARGS` (torchrun launches DDP training this way)."""

import sys

from gensemble.cli import main

sys.exit(main())
