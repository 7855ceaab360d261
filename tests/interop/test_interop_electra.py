"""ELECTRA runs export to transformers' ELECTRA classes and ELECTRA checkpoints import, with equal logits both ways."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from interop_helpers import TINY_SIZES, assert_close_where_real, padded_batch, randomized
from safetensors.torch import load_file

from prefine.checkpoint import save_checkpoint, write_run
from prefine.errors import PrefineError
from prefine.interop import import_hf_checkpoint, load_into
from prefine.model import BertConfig, BertForSequenceClassification
from prefine.model.electra import ElectraPreTrainingModel, electra_checkpoint_config, generator_config, load_electra_state
from prefine.recipes.export import export_hf
from prefine.tokenizer import save_tokenizer

transformers = pytest.importorskip("transformers")


def tiny_electra(vocab_size: int, seed: int, embedding_size: int = 0) -> ElectraPreTrainingModel:
    # ReLU in the discriminator and exact GELU in the generator head (fixed by transformers): a head given the wrong one is caught.
    config = BertConfig(vocab_size=vocab_size, hidden_act="relu", embedding_size=embedding_size, **TINY_SIZES)
    # A generator narrower than the embeddings, so it has an embeddings_project of its own in both layouts.
    generator_size = 0.25 if embedding_size else 0.5
    return randomized(ElectraPreTrainingModel(config, generator_config(config, generator_size)), seed=seed)


def fake_electra_run(run_dir: Path, model: ElectraPreTrainingModel, tokenizer) -> Path:
    write_run(run_dir, {"kind": "pretrain", "model": dataclasses.asdict(model.config)})
    save_tokenizer(tokenizer, run_dir / "tokenizer")
    return save_checkpoint(run_dir, 5, model.state_dict(), electra_checkpoint_config(model), trainer_state=None, keep_last=1)


# 0: embeddings as wide as the blocks (what prefine pre-trains); 32: ELECTRA-Small's layout, narrow
# embeddings projected up to the discriminator's 64 (and down to the generator's 32).
@pytest.mark.parametrize("embedding_size", [0, 32])
def test_electra_run_exports_discriminator_and_generator_with_equal_logits(tmp_path, tokenizer, vocab_size, embedding_size):
    ours = tiny_electra(vocab_size, seed=11, embedding_size=embedding_size)
    fake_electra_run(tmp_path / "run", ours, tokenizer)
    out = export_hf(tmp_path / "run", tmp_path / "hf")

    assert json.loads((out / "config.json").read_text())["architectures"] == ["ElectraForPreTraining"]
    assert json.loads((out / "generator" / "config.json").read_text())["architectures"] == ["ElectraForMaskedLM"]
    assert "generator_lm_head.weight" not in load_file(out / "generator" / "model.safetensors")  # tied, as save_pretrained does
    discriminator = transformers.AutoModelForPreTraining.from_pretrained(out).eval()
    generator = transformers.AutoModelForMaskedLM.from_pretrained(out / "generator").eval()
    encoder = transformers.AutoModel.from_pretrained(out).eval()
    assert type(discriminator).__name__ == "ElectraForPreTraining" and type(generator).__name__ == "ElectraForMaskedLM"
    assert generator.generator_lm_head.weight.data_ptr() == generator.electra.embeddings.word_embeddings.weight.data_ptr()
    assert generator.electra.embeddings_project.out_features == ours.generator_config.hidden_size
    assert hasattr(discriminator.electra, "embeddings_project") == bool(
        embedding_size
    )  # transformers adds it only for a narrower embedding
    assert discriminator.config.embedding_size == generator.config.embedding_size == (embedding_size or TINY_SIZES["hidden_size"])

    batch = padded_batch(vocab_size, seed=12)
    with torch.no_grad():
        assert_close_where_real(ours.discriminator_dense_logits(**batch), discriminator(**batch).logits, batch["attention_mask"])
        assert_close_where_real(ours.generator_dense_logits(**batch), generator(**batch).logits, batch["attention_mask"])
        assert_close_where_real(ours.electra(**batch), encoder(**batch).last_hidden_state, batch["attention_mask"])
    assert transformers.AutoTokenizer.from_pretrained(out)("the dog")["input_ids"] == tokenizer.encode("the dog").ids


def hf_electra_folder(folder: Path, tokenizer, vocab_size: int, with_generator: bool, embedding_size: int = 64) -> tuple:
    """A transformers ELECTRA discriminator (and generator sharing its embeddings) saved as Hugging Face folders."""
    sizes = {**TINY_SIZES, "hidden_act": "relu"}
    discriminator = randomized(
        transformers.ElectraForPreTraining(transformers.ElectraConfig(vocab_size=vocab_size, embedding_size=embedding_size, **sizes)),
        seed=21,
    )
    discriminator.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    generator = None
    if with_generator:
        generator_sizes = {**sizes, "hidden_size": 32, "num_attention_heads": 1, "intermediate_size": 128}
        generator = randomized(
            transformers.ElectraForMaskedLM(
                transformers.ElectraConfig(vocab_size=vocab_size, embedding_size=embedding_size, **generator_sizes)
            ),
            seed=22,
        )
        generator.electra.embeddings.load_state_dict(discriminator.electra.embeddings.state_dict())
        generator.tie_weights()
        generator.save_pretrained(folder / "generator")
        save_tokenizer(tokenizer, folder / "generator")
    return discriminator, generator


# 64: embeddings as wide as the blocks (ELECTRA-Base's layout); 32: ELECTRA-Small's, with an embeddings_project.
@pytest.mark.parametrize("embedding_size", [64, 32])
def test_hf_electra_imports_as_a_bert_encoder_and_as_both_networks(tmp_path, tokenizer, vocab_size, embedding_size):
    discriminator, generator = hf_electra_folder(tmp_path / "hf", tokenizer, vocab_size, with_generator=True, embedding_size=embedding_size)
    imported = import_hf_checkpoint(str(tmp_path / "hf"))
    assert imported.electra is not None and imported.electra.has_generator
    assert imported.config.embedding_width == embedding_size and imported.config.hidden_size == 64
    batch = padded_batch(vocab_size, seed=23)

    # Fine-tuning's view: the discriminator's encoder as BERT (the pooler and classifier start fresh).
    classifier = BertForSequenceClassification(imported.config, num_labels=2).eval()
    report = load_into(classifier, imported.state_dict)
    assert any("pooler" in part for part in report.newly_initialized) and any("classifier" in part for part in report.newly_initialized)
    with torch.no_grad():
        assert_close_where_real(classifier.bert(**batch), discriminator.electra(**batch).last_hidden_state, batch["attention_mask"])

    # Continued pre-training and fill-mask's view: both networks.
    ours = ElectraPreTrainingModel(imported.electra.config, imported.electra.generator_config).eval()
    assert load_electra_state(ours, imported.electra.state_dict) == []
    with torch.no_grad():
        assert_close_where_real(ours.discriminator_dense_logits(**batch), discriminator.eval()(**batch).logits, batch["attention_mask"])
        assert_close_where_real(ours.generator_dense_logits(**batch), generator.eval()(**batch).logits, batch["attention_mask"])


def test_export_then_import_gives_back_the_same_state(tmp_path, tokenizer, vocab_size):
    ours = tiny_electra(vocab_size, seed=31)
    fake_electra_run(tmp_path / "run", ours, tokenizer)
    imported = import_hf_checkpoint(str(export_hf(tmp_path / "run", tmp_path / "hf")))
    assert imported.electra.generator_config == ours.generator_config
    expected = ours.state_dict()
    assert set(imported.electra.state_dict) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(imported.electra.state_dict[name], tensor), name


def test_a_discriminator_alone_leaves_the_generator_fresh(tmp_path, tokenizer, vocab_size):
    hf_electra_folder(tmp_path / "hf", tokenizer, vocab_size, with_generator=False)
    imported = import_hf_checkpoint(str(tmp_path / "hf"))
    assert not imported.electra.has_generator
    ours = ElectraPreTrainingModel(imported.config, generator_config(imported.config, 0.25))
    assert load_electra_state(ours, imported.electra.state_dict) == ["generator"]


def test_unsupported_electra_checkpoints_are_refused_with_the_reason(tmp_path, tokenizer, vocab_size):
    hf_electra_folder(tmp_path / "pair", tokenizer, vocab_size, with_generator=True)
    with pytest.raises(PrefineError, match="ELECTRA generator"):
        import_hf_checkpoint(str(tmp_path / "pair" / "generator"))
