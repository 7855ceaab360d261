"""The resume cursor: where in the training data the next batch starts.

Every task's batches are a pure function of (seed, epoch, offset), so this pair of integers is
all a checkpoint needs to continue exactly where a run stopped. It lives below every stage: the
batch builders (pre-training data, tasks) produce batches at a position and the loop saves it.
"""

from __future__ import annotations

from typing import NamedTuple


class DataPosition(NamedTuple):
    epoch: int
    offset: int  # items (examples, instances, windows) of this epoch already consumed
