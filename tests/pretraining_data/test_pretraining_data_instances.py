"""Instance building: BERT sentence pairs, NSP balance, truncation, short sequences and MLM packing."""

from __future__ import annotations

import numpy as np
import pytest
from pretraining_data_helpers import WORDS, random_documents, within_sigmas

from prefine.model import IGNORE_NSP
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.instances import (
    NSP_IS_NEXT,
    NSP_RANDOM_NEXT,
    Instances,
    _truncate_,
    build_instances,
    nsp_coverage_warning,
    sequence_length_warning,
)
from prefine.pretraining_data.shards import build_token_shards, split_documents


def document_of(shards, positions):
    return np.searchsorted(shards.document_token_starts(), positions, side="right") - 1


def is_sentence_start(shards, positions):
    return np.isin(positions, np.asarray(shards.sentence_starts))


@pytest.fixture(scope="module")
def shards(tokenizer, tmp_path_factory):
    return build_token_shards(random_documents(11, 300), tokenizer, tmp_path_factory.mktemp("shards") / "cache")


def test_pairs_fit_and_segments_come_from_the_right_documents(shards):
    config = PretrainingDataConfig(max_seq_length=32)
    train, _ = split_documents(shards, 0.1, seed=0)
    instances = build_instances(shards, train, config, np.random.default_rng(0))
    a_length = instances.a_end - instances.a_start
    b_length = instances.b_end - instances.b_start
    pair = instances.nsp_label != IGNORE_NSP
    assert (a_length >= 1).all() and (b_length[pair] >= 1).all() and (b_length[~pair] == 0).all()
    assert (3 + a_length + b_length <= config.max_seq_length)[pair].all()
    assert (2 + a_length <= config.max_seq_length)[~pair].all()

    a_document = document_of(shards, instances.a_start)
    assert (a_document == document_of(shards, instances.a_end - 1)).all()
    assert np.isin(a_document, train).all()

    is_next = instances.nsp_label == NSP_IS_NEXT
    b_document = document_of(shards, instances.b_start)
    assert (b_document[pair] == document_of(shards, instances.b_end - 1)[pair]).all()
    assert np.isin(b_document[pair], train).all()
    assert (b_document[is_next] == a_document[is_next]).all(), "true next B is in A's document"
    assert (instances.b_start[is_next] >= instances.a_end[is_next]).all()
    # A and B were split at a sentence boundary; truncation only trims A's back and B's front.
    sentence_starts = np.asarray(shards.sentence_starts)
    boundary = sentence_starts[np.searchsorted(sentence_starts, instances.a_end[is_next], side="left")]
    assert (boundary <= instances.b_start[is_next]).all()

    random_next = instances.nsp_label == NSP_RANDOM_NEXT
    assert random_next.any()
    assert (b_document[random_next] != a_document[random_next]).all(), "random next B is from another document"


def test_nsp_labels_are_a_fair_coin(shards):
    config = PretrainingDataConfig(max_seq_length=48)
    labels = np.concatenate(
        [build_instances(shards, np.arange(shards.num_documents), config, np.random.default_rng(seed)).nsp_label for seed in range(4)]
    )
    labelled = labels[labels != IGNORE_NSP]
    assert len(labelled) > 2000
    assert within_sigmas(int((labelled == NSP_RANDOM_NEXT).sum()), len(labelled), 0.5)


def test_instances_are_deterministic_given_the_rng_and_shuffled(shards):
    config = PretrainingDataConfig(max_seq_length=32)
    documents = np.arange(shards.num_documents)
    first = build_instances(shards, documents, config, np.random.default_rng(5))
    second = build_instances(shards, documents, config, np.random.default_rng(5))
    other = build_instances(shards, documents, config, np.random.default_rng(6))
    assert all(
        np.array_equal(getattr(first, name), getattr(second, name)) for name in ("a_start", "a_end", "b_start", "b_end", "nsp_label")
    )
    assert not np.array_equal(first.a_start, other.a_start)
    assert not (np.diff(first.a_start) > 0).all(), "instances are shuffled, not in corpus order"


def reference_truncated_lengths(a_length: int, b_length: int, max_tokens: int) -> tuple[int, int]:
    """BERT's truncate_seq_pair, one token at a time, on lengths."""
    while a_length + b_length > max_tokens:
        if a_length > b_length:
            a_length -= 1
        else:
            b_length -= 1
    return a_length, b_length


def test_truncation_matches_bert_and_trims_both_ends():
    rng = np.random.default_rng(0)
    count = 2000
    a_start = rng.integers(0, 10_000, count)
    a_length = rng.integers(1, 80, count)
    b_length = np.where(rng.random(count) < 0.2, 0, rng.integers(1, 80, count))
    b_start = a_start + a_length + 3
    labels = np.where(b_length > 0, NSP_IS_NEXT, IGNORE_NSP)
    max_seq_length = 40
    instances = Instances(a_start, a_start + a_length, b_start, b_start + b_length, labels)
    truncated = _truncate_(instances.take(np.arange(count)), max_seq_length, rng)  # a copy: it truncates in place
    for i in range(count):
        max_tokens = max_seq_length - (3 if b_length[i] else 2)
        expected = reference_truncated_lengths(int(a_length[i]), int(b_length[i]), max_tokens)
        got = (truncated.a_end[i] - truncated.a_start[i], truncated.b_end[i] - truncated.b_start[i])
        assert got == expected
    # Trimmed tokens come off both ends, and the segments stay inside their original ranges.
    assert (truncated.a_start >= instances.a_start).all() and (truncated.a_end <= instances.a_end).all()
    assert (truncated.a_start > instances.a_start).any() and (truncated.a_end < instances.a_end).any()
    assert (truncated.b_start > instances.b_start).any() and (truncated.b_end < instances.b_end).any()


def test_short_seq_prob_gives_short_targets_at_that_rate(tokenizer, tmp_path):
    # One-token sentences make every chunk exactly its target length, so the rate is exact.
    single_token_words = [w for w in WORDS if len(tokenizer.encode(w, add_special_tokens=False).ids) == 1]
    assert len(single_token_words) >= 3
    rng = np.random.default_rng(0)
    documents = [[str(w) for w in rng.choice(single_token_words, 1500)] for _ in range(12)]
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache")
    max_seq_length, short_seq_prob = 24, 0.3
    max_tokens = max_seq_length - 3
    document_ends = shards.document_token_starts()[1:]

    def true_next_lengths(probability: float) -> np.ndarray:
        config = PretrainingDataConfig(max_seq_length=max_seq_length, short_seq_prob=probability)
        instances = build_instances(shards, np.arange(shards.num_documents), config, np.random.default_rng(1))
        # True-next chunks that do not end at their document's end are exactly as long as their target.
        keep = (instances.nsp_label == NSP_IS_NEXT) & ~np.isin(instances.b_end, document_ends)
        return (instances.b_end - instances.a_start)[keep]

    assert (true_next_lengths(0.0) == max_tokens).all()
    lengths = true_next_lengths(short_seq_prob)
    assert lengths.min() >= 2 and lengths.max() == max_tokens
    # A short target is uniform on 2..max_tokens, so it is shorter than max_tokens with probability (n-2)/(n-1).
    expected_rate = short_seq_prob * (max_tokens - 2) / (max_tokens - 1)
    assert within_sigmas(int((lengths < max_tokens).sum()), len(lengths), expected_rate)


def test_mlm_packs_every_training_token_once_with_document_separators(shards):
    config = PretrainingDataConfig(max_seq_length=40, objective="mlm")
    train, _ = split_documents(shards, 0.2, seed=0)
    instances = build_instances(shards, train, config, np.random.default_rng(0))
    assert (instances.nsp_label == IGNORE_NSP).all()
    assert (instances.b_start == instances.b_end).all()

    first_document = document_of(shards, instances.a_start)
    last_document = document_of(shards, instances.a_end - 1)
    separators = last_document - first_document
    assert (2 + instances.a_end - instances.a_start + separators <= config.max_seq_length).all()
    assert (separators > 0).any(), "segments run across document boundaries"
    # Every document a segment touches is a training document (no held-out text leaks in).
    touched = np.concatenate([np.arange(first, last + 1) for first, last in zip(first_document, last_document)])
    assert np.isin(touched, train).all()
    # Packing loses nothing: the segments tile the training documents' tokens exactly.
    covered = np.zeros(shards.num_tokens, dtype=np.int64)
    for start, end in zip(instances.a_start, instances.a_end):
        covered[start:end] += 1
    token_starts = shards.document_token_starts()
    in_train = np.zeros(shards.num_tokens, dtype=bool)
    for document in train:
        in_train[token_starts[document] : token_starts[document + 1]] = True
    assert (covered[in_train] == 1).all() and (covered[~in_train] == 0).all()


def test_mlm_cuts_sentences_longer_than_the_sequence_into_windows(tokenizer, tmp_path):
    documents = [[" ".join(WORDS * 3)], ["alpha beta."]]
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache")
    config = PretrainingDataConfig(max_seq_length=16, objective="mlm")
    instances = build_instances(shards, np.arange(2), config, np.random.default_rng(0))
    lengths = instances.a_end - instances.a_start
    assert (lengths <= 14).all() and lengths.sum() == shards.num_tokens


def test_single_sentence_documents_become_mlm_only_under_nsp(tokenizer, tmp_path):
    documents = random_documents(12, 60, sentences=(1, 1))
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache")
    config = PretrainingDataConfig(max_seq_length=64)
    instances = build_instances(shards, np.arange(shards.num_documents), config, np.random.default_rng(0))
    assert (instances.nsp_label == IGNORE_NSP).all() and (instances.b_start == instances.b_end).all()
    assert (instances.a_end - instances.a_start).sum() == shards.num_tokens, "packed, nothing lost"
    assert len(instances) < shards.num_documents, "several reviews share one sequence"

    message = nsp_coverage_warning(shards, np.arange(shards.num_documents))
    assert "60 of 60" in message and "no examples at all" in message and "--objective mlm" in message


def test_nsp_coverage_warning_counts_mixed_corpora(tokenizer, tmp_path):
    documents = random_documents(13, 30, sentences=(1, 1)) + random_documents(14, 10, sentences=(3, 5))
    shards = build_token_shards(documents, tokenizer, tmp_path / "cache")
    message = nsp_coverage_warning(shards, np.arange(40))
    assert "30 of 40" in message and "only on the 10 multi-sentence documents" in message
    assert nsp_coverage_warning(shards, np.arange(20, 40)) is None, "a minority of one-sentence documents is fine"

    instances = build_instances(shards, np.arange(40), PretrainingDataConfig(max_seq_length=64), np.random.default_rng(0))
    labelled = instances.nsp_label != IGNORE_NSP
    assert labelled.any() and (document_of(shards, instances.a_start[labelled]) >= 30).all()


def test_a_lone_document_gives_no_nsp_labels(shards):
    config = PretrainingDataConfig(max_seq_length=32)
    instances = build_instances(shards, np.array([3]), config, np.random.default_rng(0))
    assert len(instances) > 0 and (instances.nsp_label == IGNORE_NSP).all()


def test_packing_in_pieces_gives_the_same_segments(shards, monkeypatch):
    import prefine.pretraining_data.instances as instances_module

    config = PretrainingDataConfig(max_seq_length=40, objective="mlm")
    train, _ = split_documents(shards, 0.2, seed=0)
    monkeypatch.setattr(instances_module, "PACKING_BLOCK_DOCUMENTS", 8)
    monkeypatch.setattr(instances_module, "PACKING_PIECE_DOCUMENTS", 8 * 1000)
    whole = build_instances(shards, train, config, np.random.default_rng(0))
    monkeypatch.setattr(instances_module, "PACKING_PIECE_DOCUMENTS", 16)
    pieces = build_instances(shards, train, config, np.random.default_rng(0))
    assert all(
        np.array_equal(getattr(whole, name), getattr(pieces, name)) for name in ("a_start", "a_end", "b_start", "b_end", "nsp_label")
    )
    # No segment runs across a block cut (every 8th training document starts afresh).
    first_position = np.searchsorted(train, document_of(shards, whole.a_start))
    last_position = np.searchsorted(train, document_of(shards, whole.a_end - 1))
    assert (first_position // 8 == last_position // 8).all()
    assert (last_position > first_position).any()


def test_sentence_pairs_in_small_pieces_keep_every_rule(shards, monkeypatch):
    import prefine.pretraining_data.instances as instances_module

    monkeypatch.setattr(instances_module, "PAIR_PIECE_DOCUMENTS", 7)
    test_pairs_fit_and_segments_come_from_the_right_documents(shards)
    config = PretrainingDataConfig(max_seq_length=48)
    labels = build_instances(shards, np.arange(shards.num_documents), config, np.random.default_rng(3)).nsp_label
    labelled = labels[labels != IGNORE_NSP]
    assert within_sigmas(int((labelled == NSP_RANDOM_NEXT).sum()), len(labelled), 0.5)


def test_sequence_length_warning_names_short_documents(tokenizer, tmp_path):
    short = build_token_shards(random_documents(5, 200, sentences=(1, 1), words=(3, 6)), tokenizer, tmp_path / "short")
    ids = np.arange(short.num_documents)
    message = sequence_length_warning(short, ids, 128)
    assert message is not None and "--max-seq-length 64" in message and "far below --max-seq-length 128" in message
    # The same documents at a length they nearly fill, or long documents, give no warning.
    assert sequence_length_warning(short, ids, 32) is None
    long = build_token_shards(random_documents(6, 100, sentences=(8, 12), words=(8, 12)), tokenizer, tmp_path / "long")
    assert sequence_length_warning(long, np.arange(long.num_documents), 128) is None
