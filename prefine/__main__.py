"""`python -m prefine` (what torchrun launches with `-m prefine`)."""

import sys

from prefine.cli import main

sys.exit(main())
