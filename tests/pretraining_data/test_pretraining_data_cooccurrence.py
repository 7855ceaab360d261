"""Co-occurrence vectors for --embedding-init: counts against a direct count, PPMI against its formula, what the vectors encode."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from pretraining_data_helpers import random_documents

from prefine.pretraining_data import cooccurrence
from prefine.pretraining_data.cooccurrence import cooccurrence_counts, cooccurrence_vectors, ppmi
from prefine.pretraining_data.shards import build_token_shards, token_counts


def direct_counts(shards, doc_ids, window):
    """Weighted pair counts from a plain loop over each counted document."""
    counts = defaultdict(float)
    for document in doc_ids:
        tokens = shards.document_tokens(int(document)).tolist()
        for i, word in enumerate(tokens):
            for j in range(max(0, i - window), min(len(tokens), i + window + 1)):
                if j != i:
                    counts[word, tokens[j]] += 1.0 / abs(i - j)
    return counts


@pytest.mark.parametrize("chunk_tokens", [7, 1 << 22])
def test_counts_match_a_direct_count_within_documents_and_the_given_ones_only(tokenizer, tmp_path, monkeypatch, chunk_tokens):
    # A 7-token pass makes pairs straddle passes and documents straddle passes.
    monkeypatch.setattr(cooccurrence, "COUNT_CHUNK_TOKENS", chunk_tokens)
    shards = build_token_shards(random_documents(31, 12, sentences=(1, 3)), tokenizer, tmp_path / "cache")
    doc_ids = np.array([0, 2, 3, 5, 8, 9, 11])  # some documents held out
    counts = token_counts(shards, doc_ids)
    matrix, context_ids = cooccurrence_counts(shards, doc_ids, counts, window=3, contexts=shards.vocab_size)
    expected = direct_counts(shards, doc_ids, window=3)
    assert set(context_ids.tolist()) == set(np.flatnonzero(counts).tolist())
    column = {int(context): index for index, context in enumerate(context_ids)}
    dense = torch.zeros_like(matrix)
    for (word, context), value in expected.items():
        dense[word, column[context]] = value
    torch.testing.assert_close(matrix, dense, rtol=1e-5, atol=1e-5)


def test_contexts_are_the_most_frequent_pieces(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(32, 20), tokenizer, tmp_path / "cache")
    doc_ids = np.arange(shards.num_documents)
    counts = token_counts(shards, doc_ids)
    _, context_ids = cooccurrence_counts(shards, doc_ids, counts, window=2, contexts=5)
    assert len(context_ids) == 5
    assert counts[context_ids].min() >= np.sort(counts)[-5]


def test_ppmi_is_the_positive_part_of_smoothed_pmi():
    counts = torch.tensor([[4.0, 0.0, 1.0], [2.0, 3.0, 0.0]])
    smoothed = counts.sum(0) ** 0.75
    expected = torch.zeros_like(counts)
    for w in range(2):
        for c in range(3):
            if counts[w, c] > 0:
                pmi = math.log(counts[w, c] / counts[w].sum()) - math.log(smoothed[c] / smoothed.sum())
                expected[w, c] = max(pmi, 0.0)
    torch.testing.assert_close(ppmi(counts), expected)


def test_vectors_place_pieces_that_share_contexts_together(tokenizer, tmp_path):
    # Three whole-word pieces: the first two only ever appear between "the ... river", the third only between "of ... mountain".
    singles = [
        word for word in ("alpha", "beta", "gamma", "delta", "sigma", "omega", "kappa", "theta") if tokenizer.token_to_id(word) is not None
    ]
    first, second, third = singles[:3]
    documents = [[f"the {word} river was slowly running."] for word in (first, second) for _ in range(30)]
    documents += [[f"of {third} mountain had quickly jumped."] for _ in range(30)]
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache")
    doc_ids = np.arange(shards.num_documents)
    vectors, covered = cooccurrence_vectors(shards, doc_ids, token_counts(shards, doc_ids), dim=8, row_norm=1.0, seed=0)
    a, b, c = (vectors[tokenizer.token_to_id(word)] for word in (first, second, third))
    assert float(a @ b) > 0.9
    assert float(a @ c) < 0.5


def test_vectors_are_deterministic_scaled_and_only_for_seen_pieces(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(33, 40), tokenizer, tmp_path / "cache")
    doc_ids = np.arange(0, shards.num_documents, 2)
    counts = token_counts(shards, doc_ids)
    first, covered = cooccurrence_vectors(shards, doc_ids, counts, dim=16, row_norm=0.5, seed=3)
    again, _ = cooccurrence_vectors(shards, doc_ids, counts, dim=16, row_norm=0.5, seed=3)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert covered.tolist() == (counts > 0).tolist()
    torch.testing.assert_close(first[covered].norm(dim=1), torch.full((int(covered.sum()),), 0.5))
    assert float(first[~covered].abs().sum()) == 0.0
