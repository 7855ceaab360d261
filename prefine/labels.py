"""Label values with one meaning in every stage: what a loss skips.

The data stages write them (masked positions, tag windows, target padding) and the model's heads
read them, so they live below both.
"""

from __future__ import annotations

# Positions a token-level loss skips: unmasked MLM positions, untrained word pieces, target padding.
# Hugging Face's convention (and PyTorch cross_entropy's default ignore_index), so exported labels mean the same there.
IGNORE_LABEL = -100
# The NSP label of an instance with no sentence pair (a single-segment instance).
IGNORE_NSP = -1
