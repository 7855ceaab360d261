"""Seekable batches: determinism, epoch coverage and rollover, rank slices, layout and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pretraining_data_helpers import random_documents

from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.model import IGNORE_LABEL
from prefine.pretraining_data.batches import TRAIN_STREAM, PretrainingBatches, collate
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.instances import build_instances
from prefine.pretraining_data.masking import continuation_lookup
from prefine.pretraining_data.shards import build_token_shards
from prefine.tokenizer import SpecialTokenIds

PAD, CLS, SEP = 0, 2, 3
GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def shards(tokenizer, tmp_path_factory):
    return build_token_shards(random_documents(21, 150), tokenizer, tmp_path_factory.mktemp("shards") / "cache")


def make_batches(shards, tokenizer, seed=0, global_batch_size=GLOBAL_BATCH, **config_fields):
    config = PretrainingDataConfig(**{"max_seq_length": 32, "eval_fraction": 0.1, **config_fields})
    return PretrainingBatches.from_tokenizer(shards, tokenizer, config, seed, global_batch_size)


def original_rows(batch) -> list[list[int]]:
    """Each example's unmasked token ids, padding removed."""
    ids = torch.where(batch["mlm_labels"] != IGNORE_LABEL, batch["mlm_labels"], batch["input_ids"])
    return [row[: int(length)].tolist() for row, length in zip(ids, batch["attention_mask"].sum(dim=1))]


def segments(row: list[int]) -> list[list[int]]:
    """Text pieces between [CLS]/[SEP] markers."""
    pieces, current = [], []
    for token in row[1:]:
        if token == SEP:
            pieces.append(current)
            current = []
        else:
            current.append(token)
    return pieces


def document_texts(shards, doc_ids) -> list[str]:
    return ["," + ",".join(map(str, shards.document_tokens(int(d)).tolist())) + "," for d in doc_ids]


def occurs_in(piece: list[int], texts: list[str]) -> bool:
    needle = "," + ",".join(map(str, piece)) + ","
    return any(needle in text for text in texts)


def test_same_position_gives_identical_batches(shards, tokenizer):
    first, second = make_batches(shards, tokenizer), make_batches(shards, tokenizer)
    batch, position = first.batch_at(DataPosition(0, 16))
    again, again_position = second.batch_at(DataPosition(0, 16))
    assert position == again_position == DataPosition(0, 24)
    assert batch.keys() == again.keys()
    for name, value in batch.items():
        assert torch.equal(value, again[name]) if isinstance(value, torch.Tensor) else value == again[name]
    assert not torch.equal(first.batch_at(DataPosition(0, 24))[0]["mlm_labels"][:, :5], batch["mlm_labels"][:, :5])


def test_an_epoch_covers_its_instances_once_in_order_then_rolls_over(shards, tokenizer):
    batches = make_batches(shards, tokenizer, seed=3)
    count = batches.instances_per_epoch(0)
    position, seen = DataPosition(0, 0), []
    while position.epoch == 0:
        batch, position = batches.batch_at(position)
        seen.extend(original_rows(batch))
    assert position == DataPosition(1, 0)
    assert len(seen) == count // GLOBAL_BATCH * GLOBAL_BATCH

    train_ids = batches.doc_ids
    instances = build_instances(shards, train_ids, batches.config, np.random.default_rng([3, TRAIN_STREAM, 0]))
    expected = collate(
        instances.take(slice(0, len(seen))), shards, shards.document_token_starts(), SpecialTokenIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    )
    expected_rows = [row[: int(n)].tolist() for row, n in zip(expected["input_ids"], expected["attention_mask"].sum(1))]
    assert seen == expected_rows

    # A position without a full batch left moves to the next epoch, whose order is new.
    rolled, _ = batches.batch_at(DataPosition(0, count - GLOBAL_BATCH + 1))
    epoch_one, after = batches.batch_at(DataPosition(1, 0))
    assert original_rows(rolled) == original_rows(epoch_one) and after == DataPosition(1, GLOBAL_BATCH)
    assert original_rows(epoch_one) != seen[:GLOBAL_BATCH]


def test_ranks_split_the_global_batch_without_changing_it(shards, tokenizer):
    batches = make_batches(shards, tokenizer, whole_word_masking=True)
    position = DataPosition(0, 8)
    whole, next_position = batches.batch_at(position)
    world_size = 4
    rank_rows, per_rank_names = [], whole.keys()
    for rank in range(world_size):
        part, part_next = batches.batch_at(position, rank=rank, world_size=world_size)
        assert part_next == next_position and part.keys() == per_rank_names
        assert part["input_ids"].shape[0] == GLOBAL_BATCH // world_size
        assert part["input_ids"].shape[1] == int(part["attention_mask"].sum(1).max()), "padded to its own longest"
        assert part["num_real_tokens"] == int(part["attention_mask"].sum())
        for i in range(GLOBAL_BATCH // world_size):
            length = int(part["attention_mask"][i].sum())
            rank_rows.append(tuple(part[name][i, :length].tolist() for name in ("input_ids", "mlm_labels", "token_type_ids")))
            rank_rows[-1] += (int(part["next_sentence_label"][i]),)
    lengths = whole["attention_mask"].sum(1)
    whole_rows = [
        tuple(whole[name][i, : int(lengths[i])].tolist() for name in ("input_ids", "mlm_labels", "token_type_ids"))
        + (int(whole["next_sentence_label"][i]),)
        for i in range(GLOBAL_BATCH)
    ]
    assert rank_rows == whole_rows
    with pytest.raises(PrefineError, match="divisible"):
        batches.batch_at(position, rank=0, world_size=3)


def test_sequence_layout_of_pairs_and_single_segments(shards, tokenizer):
    batches = make_batches(shards, tokenizer, global_batch_size=64)
    batch, _ = batches.batch_at(DataPosition(0, 0))
    labels = batch["next_sentence_label"]
    assert set(labels.tolist()) <= {-1, 0, 1} and {0, 1} <= set(labels.tolist())
    assert batch["num_real_tokens"] == int(batch["attention_mask"].sum())
    for i, row in enumerate(original_rows(batch)):
        length = len(row)
        assert row[0] == CLS and row[-1] == SEP and length <= 32
        assert (batch["attention_mask"][i, :length] == 1).all() and (batch["attention_mask"][i, length:] == 0).all()
        assert (batch["input_ids"][i, length:] == PAD).all()
        types = batch["token_type_ids"][i, :length].tolist()
        if labels[i] == -1:
            assert row.count(SEP) == 1 and set(types) == {0}
        else:
            first_sep = row.index(SEP)
            assert row.count(SEP) == 2
            assert types == [0] * (first_sep + 1) + [1] * (length - first_sep - 1)
        special = [j for j, token in enumerate(row) if token in (CLS, SEP)]
        assert (batch["mlm_labels"][i, special] == IGNORE_LABEL).all()


def test_eval_batches_are_fixed_and_held_out(shards, tokenizer):
    batches = make_batches(shards, tokenizer, max_eval_instances=20)
    evaluation = batches.eval_batches(6)
    assert [len(b["input_ids"]) for b in evaluation] == [6, 6, 6, 2]
    fresh = make_batches(shards, tokenizer, max_eval_instances=20).eval_batches(6)
    for batch, other in zip(evaluation, fresh):
        for name in ("input_ids", "mlm_labels", "token_type_ids", "next_sentence_label"):
            assert torch.equal(batch[name], other[name])
    batches.batch_at(DataPosition(3, 0))  # training progress does not change evaluation
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches.eval_batches(6), fresh))

    eval_texts = document_texts(shards, batches.eval_doc_ids)
    train_texts = document_texts(shards, batches.doc_ids)
    for batch in evaluation:
        for row in original_rows(batch):
            assert all(occurs_in(piece, eval_texts) for piece in segments(row))
    train_batch, _ = batches.batch_at(DataPosition(0, 0))
    for row in original_rows(train_batch):
        assert all(occurs_in(piece, train_texts) for piece in segments(row))


def test_mlm_objective_batches_have_one_segment_and_separate_documents(shards, tokenizer):
    batches = make_batches(shards, tokenizer, objective="mlm", global_batch_size=32)
    batch, _ = batches.batch_at(DataPosition(0, 0))
    assert (batch["next_sentence_label"] == -1).all() and (batch["token_type_ids"] == 0).all()
    rows = original_rows(batch)
    assert any(row.count(SEP) > 1 for row in rows), "some sequences span two documents"
    train_texts = document_texts(shards, batches.doc_ids)
    for row in rows:
        assert all(piece and occurs_in(piece, train_texts) for piece in segments(row))


def test_separate_documents_lays_each_packed_document_out_as_its_own_row(shards, tokenizer):
    packed = make_batches(shards, tokenizer, objective="mlm", global_batch_size=32)
    separate = make_batches(shards, tokenizer, objective="mlm", global_batch_size=32, separate_documents=True)
    packed_batch, packed_next = packed.batch_at(DataPosition(0, 32))
    batch, next_position = separate.batch_at(DataPosition(0, 32))
    assert next_position == packed_next, "the same instances are consumed"
    rows = original_rows(batch)
    assert len(rows) > 32 and batch["row_instance"].tolist() == sorted(batch["row_instance"].tolist())
    assert set(batch["row_instance"].tolist()) == set(range(32))
    # The same text, in the same order: the packed rows' documents, one per row.
    assert [segments(row)[0] for row in rows] == [piece for row in original_rows(packed_batch) for piece in segments(row)]
    train_texts = document_texts(shards, separate.doc_ids)
    for i, row in enumerate(rows):
        assert row[0] == CLS and row[-1] == SEP and row.count(SEP) == 1 and row.count(CLS) == 1
        assert occurs_in(row[1:-1], train_texts)
        special = [0, len(row) - 1]
        assert (batch["mlm_labels"][i, special] == IGNORE_LABEL).all()
    assert batch["num_real_tokens"] == int(batch["attention_mask"].sum())
    assert (batch["mlm_labels"] != IGNORE_LABEL).any()


def test_separate_documents_split_between_ranks_by_instance(shards, tokenizer):
    batches = make_batches(shards, tokenizer, objective="mlm", global_batch_size=32, separate_documents=True)
    whole, _ = batches.batch_at(DataPosition(0, 0))
    parts = [batches.batch_at(DataPosition(0, 0), rank=rank, world_size=4)[0] for rank in range(4)]
    for rank, part in enumerate(parts):
        assert set(part["row_instance"].tolist()) == set(range(8 * rank, 8 * rank + 8))
        assert part["input_ids"].shape[1] == int(part["attention_mask"].sum(1).max()), "padded to its own longest"
    rank_rows = [row for part in parts for row in zip(original_rows(part), part["mlm_labels"].tolist())]
    whole_rows = list(zip(original_rows(whole), whole["mlm_labels"].tolist()))
    assert [row for row, _ in rank_rows] == [row for row, _ in whole_rows]
    assert [labels[: len(row)] for row, labels in rank_rows] == [labels[: len(row)] for row, labels in whole_rows]


def test_separate_documents_needs_a_packed_objective():
    with pytest.raises(PrefineError, match="--separate-documents.*--objective mlm or electra"):
        PretrainingDataConfig(objective="mlm+nsp", separate_documents=True)


def test_whole_word_masking_in_batches_keeps_words_whole(shards, tokenizer):
    batches = make_batches(shards, tokenizer, whole_word_masking=True, mlm_probability=0.3, global_batch_size=64)
    is_continuation = continuation_lookup(tokenizer)
    batch, _ = batches.batch_at(DataPosition(0, 0))
    assert (batch["mlm_labels"] != IGNORE_LABEL).any()
    for i, row in enumerate(original_rows(batch)):
        selected = (batch["mlm_labels"][i, : len(row)] != IGNORE_LABEL).tolist()
        for j in range(2, len(row)):
            if is_continuation[row[j]] and row[j - 1] not in (CLS, SEP):
                assert selected[j] == selected[j - 1]


def test_single_sentence_corpus_warns_and_trains_mlm_only(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(22, 80, sentences=(1, 1)), tokenizer, tmp_path / "cache")
    with pytest.warns(UserWarning, match="objective mlm is the right choice"):
        batches = make_batches(shards, tokenizer)
    batch, _ = batches.batch_at(DataPosition(0, 0))
    assert (batch["next_sentence_label"] == -1).all()


def test_corpus_too_small_for_one_batch_is_a_user_error(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(23, 4, sentences=(1, 2)), tokenizer, tmp_path / "cache")
    with pytest.raises(PrefineError, match="add text or lower --max-seq-length"):
        make_batches(shards, tokenizer, global_batch_size=64)


def test_one_document_corpus_has_no_eval_batches(tokenizer, tmp_path):
    shards = build_token_shards(random_documents(24, 1, sentences=(40, 40)), tokenizer, tmp_path / "cache")
    batches = make_batches(shards, tokenizer, global_batch_size=4)
    assert batches.eval_batches(4) == []
    batch, _ = batches.batch_at(DataPosition(0, 0))
    assert (batch["next_sentence_label"] == -1).all()


def test_unigram_baseline_scores_the_masked_eval_tokens_with_training_frequencies(shards, tokenizer):
    import math
    from collections import Counter

    batches = make_batches(shards, tokenizer)
    evaluation = batches.eval_batches(4)
    train_counts = Counter(token for document in batches.doc_ids.tolist() for token in shards.document_tokens(document).tolist())
    total, vocab = sum(train_counts.values()), shards.vocab_size
    targets = [int(t) for batch in evaluation for t in batch["mlm_labels"].flatten() if t != IGNORE_LABEL]
    most_frequent = max(train_counts, key=train_counts.get)
    expected_loss = sum(-math.log((train_counts[t] + 1) / (total + vocab)) for t in targets) / len(targets)
    loss, accuracy = batches.unigram_baseline(evaluation)
    assert loss == pytest.approx(expected_loss, rel=1e-9)
    assert accuracy == pytest.approx(sum(t == most_frequent for t in targets) / len(targets))
    assert 0 < accuracy < 1 and 0 < loss < math.log(vocab)  # frequencies beat a uniform guess
    assert batches.unigram_baseline([]) is None
