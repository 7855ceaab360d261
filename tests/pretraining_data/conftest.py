"""Fixtures for the pre-training data tests, all in-process."""

from __future__ import annotations

import pytest
from pretraining_data_helpers import random_documents, train_tokenizer
from tokenizers import Tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    sentences = [sentence for document in random_documents(0, 200) for sentence in document]
    return train_tokenizer(sentences)
