"""`python -m styleshift`, which is also what `torchrun -m styleshift train ...` runs."""

import sys

from .cli import main

sys.exit(main())
