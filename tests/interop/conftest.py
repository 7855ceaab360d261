"""Fixtures for the interop tests: a WordPiece tokenizer trained in-process."""

from __future__ import annotations

import pytest
from interop_helpers import CORPUS

from prefine.tokenizer import TokenizerConfig, train_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    """A WordPiece tokenizer trained in-process on a few English and Korean sentences."""
    return train_tokenizer(CORPUS, TokenizerConfig(vocab_size=160, min_frequency=1), show_progress=False)


@pytest.fixture(scope="session")
def vocab_size(tokenizer) -> int:
    return tokenizer.get_vocab_size()
