"""The generation task's data: column detection, decoder inputs and labels, seekable batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.model import IGNORE_LABEL
from prefine.tasks.generation import GenerationBatches, GenerationDataConfig, collate_pairs, encode_pairs, read_pairs
from prefine.tokenizer import TokenizerConfig, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    lines = ["the cat sat on the mat", "a dog ran over the hill", "오늘 서울 날씨는 맑음", "summary title of a long document"]
    return train_tokenizer(lines * 4, TokenizerConfig(vocab_size=150, min_frequency=1), show_progress=False)


def write(path, records) -> str:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return str(path)


def test_columns_are_detected_or_taken_from_flags(tmp_path):
    source = write(tmp_path / "a.jsonl", [{"id": 1, "article": "the cat sat", "headline": "cat"}])
    pairs = read_pairs(source, GenerationDataConfig(), "train")
    assert (pairs.columns.source, pairs.columns.target) == ("article", "headline")
    # "text" would be detected as the source; the flags say otherwise.
    other = write(tmp_path / "b.jsonl", [{"text": "x", "question": "the cat sat", "answer": "cat"}])
    chosen = read_pairs(other, GenerationDataConfig(source_column="question", target_column="answer"), "train")
    assert chosen.sources == ["the cat sat"] and chosen.targets == ["cat"]


@pytest.mark.parametrize(
    "records, config, message",
    [
        ([{"document": "a b", "summary": ""}], {}, "line 1 has an empty target"),
        ([{"document": "", "summary": "a"}], {}, "line 1 has an empty source"),
        ([{"document": "a b", "notes": "a"}], {}, "holds the target text"),
        ([{"body": "a b", "summary": "a"}], {"source_column": "document"}, "no source column 'document'"),
        ([{"text": "a b", "summary": "a"}], {"source_column": "summary", "target_column": "summary"}, "both 'summary'"),
    ],
)
def test_bad_pairs_are_rejected_naming_the_fix(tmp_path, records, config, message):
    with pytest.raises(PrefineError, match=message):
        read_pairs(write(tmp_path / "bad.jsonl", records), GenerationDataConfig(**config), "train")


def test_decoder_reads_cls_and_target_and_predicts_target_and_sep_with_padding_ignored(tmp_path, tokenizer):
    source = write(
        tmp_path / "p.jsonl",
        [{"document": "the cat sat on the mat", "summary": "cat sat"}, {"document": "오늘 날씨", "summary": "오늘 서울 날씨는 맑음"}],
    )
    pairs = encode_pairs(read_pairs(source, GenerationDataConfig(), "train"), tokenizer, GenerationDataConfig())
    cls, sep, pad = (tokenizer.token_to_id(token) for token in ("[CLS]", "[SEP]", "[PAD]"))
    batch = collate_pairs(pairs, np.array([0, 1]), pad)
    short, long = pairs.targets.example_ids(0), pairs.targets.example_ids(1)
    assert short[0] == cls and short[-1] == sep and len(long) > len(short)
    assert batch["decoder_input_ids"][1].tolist() == long[:-1]
    assert batch["labels"][1].tolist() == long[1:]
    assert batch["decoder_input_ids"][0, : len(short) - 1].tolist() == short[:-1]
    assert batch["labels"][0].tolist() == short[1:] + [IGNORE_LABEL] * (len(long) - len(short))
    assert batch["attention_mask"][1].tolist() == [1] * len(pairs.sources.example_ids(1)) + [0] * (
        batch["input_ids"].shape[1] - len(pairs.sources.example_ids(1))
    )
    assert batch["num_real_tokens"] == int(pairs.sources.lengths.sum() + pairs.targets.lengths.sum())


def test_long_targets_are_cut_and_still_end_with_sep(tmp_path, tokenizer, capsys):
    source = write(tmp_path / "p.jsonl", [{"document": "the cat", "summary": "the cat sat on the mat " * 5}])
    config = GenerationDataConfig(max_target_length=6)
    pairs = encode_pairs(read_pairs(source, config, "train"), tokenizer, config)
    ids = pairs.targets.example_ids(0)
    assert len(ids) == 6 and ids[-1] == tokenizer.token_to_id("[SEP]")
    assert "1 of 1 targets reach --max-target-length 6" in capsys.readouterr().err


def test_batches_are_a_function_of_the_position(tmp_path, tokenizer):
    records = [{"document": " ".join(["the cat sat"] * (index % 5 + 1)), "summary": "cat " * (index % 3 + 1)} for index in range(40)]
    source = write(tmp_path / "p.jsonl", records)
    pairs = encode_pairs(read_pairs(source, GenerationDataConfig(), "train"), tokenizer, GenerationDataConfig())
    batches = GenerationBatches(pairs, 8, pad_id=0, seed=3)
    position = batches.start_position()
    seen = []
    for _ in range(7):
        batch, position = batches.batch_at(position, 0, 1)
        seen.append(batch)
    again, _ = GenerationBatches(pairs, 8, pad_id=0, seed=3).batch_at(DataPosition(1, 8), 0, 1)  # step 7 of a fresh start: epoch 1, 8 in
    assert position == DataPosition(1, 16)
    assert torch.equal(again["input_ids"], seen[6]["input_ids"]) and torch.equal(again["labels"], seen[6]["labels"])
