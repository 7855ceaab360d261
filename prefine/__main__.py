"""`python -m prefine` (what torchrun launches with `-m prefine`)."""

import os
import sys

from prefine.cli import main

if "TORCHELASTIC_RUN_ID" in os.environ:
    # Under torchrun, record() puts a failing rank's error into torchrun's "Root Cause" summary.
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)())
sys.exit(main())
