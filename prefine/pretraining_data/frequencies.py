"""Word-piece frequencies of a corpus as add-one smoothed log probabilities.

The corpus's statistics start the MLM head's output biases (prefine.model.heads) and ELECTRA's
replaced-token prior, and give the unigram baseline the pre-training logs beside its MLM loss
(prefine.pretraining_data.batches), so one definition serves all three.
"""

from __future__ import annotations

import torch


def log_frequencies(counts: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """log((count + 1) / (total + vocabulary)): add-one smoothed log frequencies, one per id."""
    counts = counts.to(torch.float64)
    return (torch.log(counts + 1.0) - torch.log(counts.sum() + len(counts))).to(dtype)
