"""Exporting prefine runs: transformers loads the folder and reproduces our logits and token ids."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from interop_helpers import ENGLISH_TEXTS, KOREAN_TEXTS, TINY_SIZES, assert_close_where_real, padded_batch, randomized
from safetensors.torch import load_file

from prefine.checkpoint import save_checkpoint, write_run
from prefine.errors import PrefineError
from prefine.interop import import_hf_checkpoint, load_into
from prefine.model import BertConfig, BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification
from prefine.recipes.export import add_export_command, export_hf
from prefine.tokenizer import save_tokenizer

transformers = pytest.importorskip("transformers")

LABELS = ["negative", "neutral", "positive"]


def fake_run(run_dir: Path, model, tokenizer, architecture: str, **extra_config) -> Path:
    """A run folder as the recipes write it: run.json, tokenizer/, checkpoints/step-N."""
    checkpoint_config = {**dataclasses.asdict(model.config), "model_type": "bert", "architectures": [architecture], **extra_config}
    write_run(run_dir, {"kind": "test", "model": dataclasses.asdict(model.config)})
    save_tokenizer(tokenizer, run_dir / "tokenizer")
    return save_checkpoint(run_dir, 7, model.state_dict(), checkpoint_config, trainer_state=None, keep_last=1)


def tiny_config(vocab_size: int, **overrides) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, **TINY_SIZES, **overrides)


def test_pretraining_run_exports_to_automodel_for_pretraining(tmp_path, tokenizer, vocab_size):
    ours = randomized(BertForPreTraining(tiny_config(vocab_size)), seed=3)
    fake_run(tmp_path / "run", ours, tokenizer, "BertForPreTraining", tokenizer_fingerprint="abc")
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert "tokenizer_fingerprint" not in config
    assert "cls.predictions.decoder.weight" not in load_file(out / "model.safetensors")
    theirs = transformers.AutoModelForPreTraining.from_pretrained(out).eval()
    assert theirs.cls.predictions.decoder.weight.data_ptr() == theirs.bert.embeddings.word_embeddings.weight.data_ptr()
    batch = padded_batch(vocab_size)
    with torch.no_grad():
        expected = theirs(**batch)
        assert_close_where_real(ours.dense_prediction_logits(**batch), expected.prediction_logits, batch["attention_mask"])
        torch.testing.assert_close(ours(**batch).nsp_logits, expected.seq_relationship_logits, atol=1e-5, rtol=0)


def test_untied_pretraining_run_exports_its_decoder_and_round_trips(tmp_path, tokenizer, vocab_size):
    ours = randomized(BertForPreTraining(tiny_config(vocab_size, tie_word_embeddings=False)), seed=13)
    fake_run(tmp_path / "run", ours, tokenizer, "BertForPreTraining")
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    theirs = transformers.AutoModelForPreTraining.from_pretrained(out).eval()
    assert theirs.cls.predictions.decoder.weight.data_ptr() != theirs.bert.embeddings.word_embeddings.weight.data_ptr()
    batch = padded_batch(vocab_size, seed=2)
    with torch.no_grad():
        assert_close_where_real(ours.dense_prediction_logits(**batch), theirs(**batch).prediction_logits, batch["attention_mask"])
    imported = import_hf_checkpoint(str(out))
    assert imported.config == ours.config
    reloaded = BertForPreTraining(imported.config)
    assert load_into(reloaded, imported.state_dict).newly_initialized == []
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, atol=0, rtol=0)


def test_classifier_run_exports_labels_and_logits(tmp_path, tokenizer, vocab_size):
    ours = randomized(BertForSequenceClassification(tiny_config(vocab_size), num_labels=3), seed=4)
    id2label = {index: label for index, label in enumerate(LABELS)}
    checkpoint = fake_run(
        tmp_path / "run",
        ours,
        tokenizer,
        "BertForSequenceClassification",
        id2label=id2label,
        label2id={label: index for index, label in id2label.items()},
        num_labels=3,
    )
    # A checkpoint folder exports too; its run's tokenizer is found two levels up.
    out = export_hf(checkpoint, tmp_path / "hf")
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert theirs.config.id2label == id2label and theirs.config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    batch = padded_batch(vocab_size, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=0)


def test_question_answering_run_exports_span_logits(tmp_path, tokenizer, vocab_size):
    ours = randomized(BertForQuestionAnswering(tiny_config(vocab_size)), seed=6)
    fake_run(tmp_path / "run", ours, tokenizer, "BertForQuestionAnswering")
    theirs = transformers.AutoModelForQuestionAnswering.from_pretrained(export_hf(tmp_path / "run", tmp_path / "hf")).eval()
    batch = padded_batch(vocab_size, seed=7)
    with torch.no_grad():
        expected, output = theirs(**batch), ours(**batch)
    assert_close_where_real(output.start_logits, expected.start_logits, batch["attention_mask"])
    assert_close_where_real(output.end_logits, expected.end_logits, batch["attention_mask"])


def test_exported_tokenizer_gives_identical_ids_in_english_and_korean(tmp_path, tokenizer, vocab_size):
    fake_run(tmp_path / "run", BertForPreTraining(tiny_config(vocab_size)), tokenizer, "BertForPreTraining")
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out / name).is_file()
    reference = transformers.AutoTokenizer.from_pretrained(out)
    for text in ENGLISH_TEXTS + KOREAN_TEXTS:
        assert reference(text)["input_ids"] == tokenizer.encode(text).ids
    # Korean must come through as syllable pieces, not [UNK] or decomposed jamo.
    assert reference.unk_token_id not in reference(KOREAN_TEXTS[0])["input_ids"]
    pair = reference(ENGLISH_TEXTS[0], KOREAN_TEXTS[1])
    encoded = tokenizer.encode(ENGLISH_TEXTS[0], KOREAN_TEXTS[1])
    assert pair["input_ids"] == encoded.ids and pair["token_type_ids"] == encoded.type_ids


def test_export_then_import_round_trips_the_weights(tmp_path, tokenizer, vocab_size):
    ours = randomized(BertForPreTraining(tiny_config(vocab_size)), seed=8)
    fake_run(tmp_path / "run", ours, tokenizer, "BertForPreTraining")
    imported = import_hf_checkpoint(str(export_hf(tmp_path / "run", tmp_path / "hf")))
    assert imported.config == ours.config
    reloaded = BertForPreTraining(imported.config)
    report = load_into(reloaded, imported.state_dict)
    assert report.newly_initialized == [] and report.ignored == []
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, atol=0, rtol=0)


def test_export_command_writes_the_folder(tmp_path, tokenizer, vocab_size, capsys):
    fake_run(tmp_path / "run", BertForQuestionAnswering(tiny_config(vocab_size)), tokenizer, "BertForQuestionAnswering")
    parser = argparse.ArgumentParser()
    add_export_command(parser.add_subparsers())
    args = parser.parse_args(["export", str(tmp_path / "run"), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert args.func(args) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert str(tmp_path / "hf") in capsys.readouterr().out


def test_exported_weights_are_readable_by_others_like_the_other_files(tmp_path, tokenizer, vocab_size):
    fake_run(tmp_path / "run", BertForQuestionAnswering(tiny_config(vocab_size)), tokenizer, "BertForQuestionAnswering")
    previous = os.umask(0o022)
    try:
        out = export_hf(tmp_path / "run", tmp_path / "hf")
    finally:
        os.umask(previous)
    assert {path.name: path.stat().st_mode & 0o777 for path in out.iterdir()}["model.safetensors"] == 0o644
    assert {path.stat().st_mode & 0o777 for path in out.iterdir()} == {0o644}


def test_unsupported_architecture_and_non_run_folders_are_clear_errors(tmp_path, tokenizer, vocab_size):
    fake_run(tmp_path / "run", BertForQuestionAnswering(tiny_config(vocab_size)), tokenizer, "BertForMultipleChoice")
    with pytest.raises(PrefineError, match="architectures \\['BertForMultipleChoice'\\] cannot be exported"):
        export_hf(tmp_path / "run", tmp_path / "hf")
    (tmp_path / "plain").mkdir()
    with pytest.raises(PrefineError, match="neither a prefine run"):
        export_hf(tmp_path / "plain", tmp_path / "hf")
    with pytest.raises(PrefineError, match="not found"):
        export_hf(tmp_path / "missing", tmp_path / "hf")


def test_checkpoint_that_does_not_match_its_architecture_is_refused(tmp_path, tokenizer, vocab_size):
    # QA weights (no pooler) labelled as a pre-training checkpoint must not export half-random.
    fake_run(tmp_path / "run", BertForQuestionAnswering(tiny_config(vocab_size)), tokenizer, "BertForPreTraining")
    with pytest.raises(PrefineError, match="lacks bert.pooler.dense.weight for BertForPreTraining"):
        export_hf(tmp_path / "run", tmp_path / "hf")


def test_bad_labels_and_mismatched_shapes_are_clear_errors(tmp_path, tokenizer, vocab_size):
    model = BertForSequenceClassification(tiny_config(vocab_size), num_labels=2)
    fake_run(tmp_path / "labels", model, tokenizer, "BertForSequenceClassification", id2label={"0": "yes", "1": "yes"})
    with pytest.raises(PrefineError, match="must map the ids 0..n-1 to distinct labels"):
        export_hf(tmp_path / "labels", tmp_path / "hf")
    fake_run(tmp_path / "shapes", model, tokenizer, "BertForSequenceClassification", id2label={"0": "no", "1": "yes", "2": "maybe"})
    with pytest.raises(PrefineError, match="does not match its config.json: size mismatch for classifier.weight"):
        export_hf(tmp_path / "shapes", tmp_path / "hf")
