"""Importing transformers checkpoints: same logits as transformers, clear errors for anything else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from interop_helpers import ENGLISH_TEXTS, KOREAN_TEXTS, assert_close_where_real, hf_tiny_config, padded_batch, randomized
from safetensors.torch import load_file, save_file

from prefine.errors import PrefineError
from prefine.interop import (
    bert_tokenizer_from_vocab,
    import_hf_checkpoint,
    is_hf_model_dir,
    load_hf_config,
    load_hf_state_dict,
    load_into,
)
from prefine.model import BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification, BertModel
from prefine.tokenizer import save_tokenizer

transformers = pytest.importorskip("transformers")


def saved_hf_model(model_class, directory: Path, vocab_size: int, seed: int = 0, **config_overrides):
    model = randomized(model_class(hf_tiny_config(vocab_size, **config_overrides)), seed)
    model.save_pretrained(directory)
    return model


def imported(directory: Path, our_model):
    model = our_model(load_hf_config(directory))
    report = load_into(model, load_hf_state_dict(directory))
    return model.eval(), report


def test_pretraining_checkpoint_gives_transformers_mlm_and_nsp_logits(tmp_path, vocab_size):
    theirs = saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    ours, report = imported(tmp_path, BertForPreTraining)
    assert report.newly_initialized == [] and report.ignored == []
    batch = padded_batch(vocab_size)
    with torch.no_grad():
        expected = theirs(**batch)
        mlm_logits = ours.dense_prediction_logits(**batch)
        nsp_logits = ours(**batch).nsp_logits
    assert_close_where_real(mlm_logits, expected.prediction_logits, batch["attention_mask"])
    torch.testing.assert_close(nsp_logits, expected.seq_relationship_logits, atol=1e-5, rtol=0)


def test_classification_checkpoint_gives_transformers_logits(tmp_path, vocab_size):
    theirs = saved_hf_model(transformers.BertForSequenceClassification, tmp_path, vocab_size, num_labels=3)
    ours, report = imported(tmp_path, lambda config: BertForSequenceClassification(config, num_labels=3))
    assert report.newly_initialized == []
    batch = padded_batch(vocab_size, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=0)


def test_question_answering_checkpoint_gives_transformers_span_logits(tmp_path, vocab_size):
    theirs = saved_hf_model(transformers.BertForQuestionAnswering, tmp_path, vocab_size)
    ours, report = imported(tmp_path, BertForQuestionAnswering)
    assert report.newly_initialized == []
    batch = padded_batch(vocab_size, seed=2)
    with torch.no_grad():
        expected = theirs(**batch)
        output = ours(**batch)
    assert_close_where_real(output.start_logits, expected.start_logits, batch["attention_mask"])
    assert_close_where_real(output.end_logits, expected.end_logits, batch["attention_mask"])


def test_headless_bert_model_save_loads_with_new_heads_reported(tmp_path, vocab_size):
    theirs = saved_hf_model(transformers.BertModel, tmp_path, vocab_size)
    assert not any(name.startswith("bert.") for name in load_file(tmp_path / "model.safetensors"))
    ours, report = imported(tmp_path, BertForPreTraining)
    assert report.newly_initialized == ["cls.predictions (MLM head)", "cls.seq_relationship (NSP head)"]
    assert all(name.startswith("bert.") for name in report.loaded)
    batch = padded_batch(vocab_size)
    with torch.no_grad():
        assert_close_where_real(ours.bert(**batch), theirs(**batch).last_hidden_state, batch["attention_mask"])


def test_pretraining_checkpoint_into_classifier_ignores_mlm_heads(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    _, report = imported(tmp_path, lambda config: BertForSequenceClassification(config, num_labels=2))
    assert report.newly_initialized == ["classifier"]
    assert "cls.seq_relationship.weight" in report.ignored and "cls.predictions.bias" in report.ignored


def test_classifier_with_other_label_count_starts_fresh_and_says_why(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForSequenceClassification, tmp_path, vocab_size, num_labels=2)
    ours, report = imported(tmp_path, lambda config: BertForSequenceClassification(config, num_labels=5))
    assert report.newly_initialized == ["classifier (the checkpoint's classifier.weight has shape [2, 64], the model needs [5, 64])"]
    assert report.ignored == ["classifier.bias", "classifier.weight"]
    assert ours.classifier.weight.shape == (5, 64)


class NotATensor:
    """Pickled by reference: loading it would mean importing and running this module's code."""


def legacy_state_dict(model) -> dict[str, torch.Tensor]:
    """What old transformers / TF conversions stored: gamma/beta names, the decoder, position_ids."""
    state = {}
    for name, tensor in model.state_dict().items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[name] = tensor.clone()
    state["bert.embeddings.position_ids"] = torch.arange(64)[None]
    assert "cls.predictions.decoder.weight" in state
    return state


def test_pytorch_bin_with_legacy_names_loads_with_weights_only(tmp_path, vocab_size):
    theirs = randomized(transformers.BertForPreTraining(hf_tiny_config(vocab_size)))
    theirs.config.save_pretrained(tmp_path)
    torch.save(legacy_state_dict(theirs), tmp_path / "pytorch_model.bin")
    assert is_hf_model_dir(tmp_path)
    ours, report = imported(tmp_path, BertForPreTraining)
    assert report.newly_initialized == [] and report.ignored == []
    batch = padded_batch(vocab_size)
    with torch.no_grad():
        assert_close_where_real(ours.dense_prediction_logits(**batch), theirs(**batch).prediction_logits, batch["attention_mask"])


def test_pytorch_bin_that_needs_code_to_unpickle_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(2), "payload": NotATensor()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(PrefineError, match="never runs code"):
        load_hf_state_dict(tmp_path)


def test_untied_decoder_is_refused_for_the_mlm_head_and_ignored_for_fine_tuning(tmp_path, vocab_size):
    theirs = randomized(transformers.BertForPreTraining(hf_tiny_config(vocab_size)))
    state = legacy_state_dict(theirs)
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1.0
    config = load_hf_config(_write_config(tmp_path, theirs))
    with pytest.raises(PrefineError, match="cls.predictions.decoder.weight"):
        load_into(BertForPreTraining(config), state)
    report = load_into(BertForQuestionAnswering(config), state)
    assert "cls.predictions.decoder.weight" in report.ignored


def test_untied_transformers_checkpoint_keeps_its_own_decoder(tmp_path, vocab_size):
    theirs = randomized(transformers.BertForPreTraining(hf_tiny_config(vocab_size, tie_word_embeddings=False)), seed=5)
    with torch.no_grad():  # an untied head scores with the decoder's own bias, whatever cls.predictions.bias holds
        theirs.cls.predictions.decoder.bias.copy_(torch.randn(vocab_size))
    theirs.save_pretrained(tmp_path)
    ours, report = imported(tmp_path, BertForPreTraining)
    assert ours.config.tie_word_embeddings is False and report.newly_initialized == []
    batch = padded_batch(vocab_size, seed=3)
    with torch.no_grad():
        assert_close_where_real(ours.dense_prediction_logits(**batch), theirs.eval()(**batch).prediction_logits, batch["attention_mask"])


def test_tied_checkpoint_gives_an_untied_head_its_embedding_table(tmp_path, vocab_size):
    theirs = randomized(transformers.BertForPreTraining(hf_tiny_config(vocab_size)), seed=6)
    config = load_hf_config(_write_config(tmp_path, theirs))
    ours = BertForPreTraining(dataclasses.replace(config, tie_word_embeddings=False))
    # As save_pretrained writes a tied head: no second copy under the decoder's names.
    state = {name: tensor for name, tensor in theirs.state_dict().items() if not name.startswith("cls.predictions.decoder.")}
    load_into(ours, state)
    torch.testing.assert_close(ours.cls.predictions.decoder.weight, theirs.bert.embeddings.word_embeddings.weight, atol=0, rtol=0)
    assert ours.cls.predictions.decoder.weight.data_ptr() != ours.bert.embeddings.word_embeddings.weight.data_ptr()


def _write_config(directory: Path, model) -> Path:
    model.config.save_pretrained(directory)
    return directory


def test_missing_encoder_weight_names_the_key(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    state = load_hf_state_dict(tmp_path)
    del state["bert.encoder.layer.1.attention.self.key.weight"]
    with pytest.raises(PrefineError, match=r"bert\.encoder\.layer\.1\.attention\.self\.key\.weight"):
        load_into(BertForPreTraining(load_hf_config(tmp_path)), state)


def test_vocabulary_mismatch_names_the_key_and_both_shapes(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vocab_size"] = vocab_size + 10
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PrefineError,
        match=rf"bert\.embeddings\.word_embeddings\.weight has shape \[{vocab_size}, 64\] but the model expects \[{vocab_size + 10}, 64\]",
    ):
        imported(tmp_path, BertForPreTraining)


@pytest.mark.parametrize(
    "config_class, model_type",
    [("RobertaConfig", "roberta"), ("DistilBertConfig", "distilbert")],
)
def test_other_architectures_are_refused_naming_the_model_type(tmp_path, config_class, model_type):
    getattr(transformers, config_class)(vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(PrefineError, match=f"model_type '{model_type}'"):
        load_hf_config(tmp_path)


def test_non_bert_architectures_field_is_refused(tmp_path, vocab_size):
    hf_tiny_config(vocab_size, architectures=["RobertaForMaskedLM"]).save_pretrained(tmp_path)
    with pytest.raises(PrefineError, match="architectures 'RobertaForMaskedLM'"):
        load_hf_config(tmp_path)


def test_import_folder_gives_config_weights_and_transformers_tokenizer_ids(tmp_path, tokenizer, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    save_tokenizer(tokenizer, tmp_path)
    checkpoint = import_hf_checkpoint(str(tmp_path))
    assert checkpoint.config.vocab_size == vocab_size and checkpoint.lowercase
    assert "bert.embeddings.word_embeddings.weight" in checkpoint.state_dict
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in ENGLISH_TEXTS + KOREAN_TEXTS:
        assert checkpoint.tokenizer.encode(text).ids == reference(text)["input_ids"]


@pytest.mark.parametrize("lowercase", [True, False])
def test_vocab_txt_only_folder_tokenizes_like_transformers_bert_tokenizer(tmp_path, tokenizer, lowercase):
    # Copy only vocab.txt and BERT's casing setting: transformers then builds a BertTokenizer,
    # whose uncased normalization decomposes Hangul; the checkpoint's ids must follow it.
    save_tokenizer(tokenizer, tmp_path / "full")
    (tmp_path / "vocab.txt").write_bytes((tmp_path / "full" / "vocab.txt").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase}))
    ours = bert_tokenizer_from_vocab(tmp_path)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in ENGLISH_TEXTS + KOREAN_TEXTS + [ENGLISH_TEXTS[0] + " [SEP] " + KOREAN_TEXTS[0]]:
        assert ours.encode(text).ids == reference(text)["input_ids"]
    pair = ours.encode(ENGLISH_TEXTS[0], KOREAN_TEXTS[0])
    expected = reference(ENGLISH_TEXTS[0], KOREAN_TEXTS[0])
    assert pair.ids == expected["input_ids"] and pair.type_ids == expected["token_type_ids"]


def test_hub_name_downloads_through_snapshot_download(tmp_path, tokenizer, vocab_size, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    folder = tmp_path / "snapshot"
    saved_hf_model(transformers.BertForPreTraining, folder, vocab_size)
    save_tokenizer(tokenizer, folder)
    requested = []

    def fake_snapshot_download(repo_id, allow_patterns):
        requested.append((repo_id, allow_patterns))
        return str(folder)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    checkpoint = import_hf_checkpoint("someone/tiny-bert")
    assert checkpoint.source == "someone/tiny-bert" and checkpoint.config.hidden_size == 64
    assert requested[0][0] == "someone/tiny-bert" and "config.json" in requested[0][1] and "vocab.txt" in requested[0][1]


def test_hub_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(repo_id, allow_patterns):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        PrefineError, match=r"could not download bert-base-uncased from the Hugging Face Hub \(.*couldn't connect.*\); pass a local folder"
    ):
        import_hf_checkpoint("bert-base-uncased")


def test_run_folders_and_plain_folders_are_not_hf_models(tmp_path, vocab_size):
    saved_hf_model(transformers.BertModel, tmp_path, vocab_size)
    assert is_hf_model_dir(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    assert not is_hf_model_dir(tmp_path)
    with pytest.raises(PrefineError, match="is a prefine run"):
        import_hf_checkpoint(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrefineError, match="not a Hugging Face model folder"):
        import_hf_checkpoint(str(tmp_path / "empty"))


def test_bare_encoder_target_loads_prefixed_checkpoint(tmp_path, vocab_size):
    theirs = saved_hf_model(transformers.BertForSequenceClassification, tmp_path, vocab_size, num_labels=2)
    ours, report = imported(tmp_path, BertModel)
    assert report.ignored == ["classifier.bias", "classifier.weight"]
    batch = padded_batch(vocab_size)
    with torch.no_grad():
        assert_close_where_real(ours(**batch), theirs.bert(**batch).last_hidden_state, batch["attention_mask"])


def test_fp16_safetensors_are_cast_to_the_model_dtype(tmp_path, vocab_size):
    saved_hf_model(transformers.BertModel, tmp_path, vocab_size)
    state = load_file(tmp_path / "model.safetensors")
    save_file({name: tensor.half() for name, tensor in state.items()}, tmp_path / "model.safetensors")
    ours, _ = imported(tmp_path, BertModel)
    assert ours.embeddings.word_embeddings.weight.dtype == torch.float32
    torch.testing.assert_close(ours.embeddings.word_embeddings.weight, state["embeddings.word_embeddings.weight"].half().float())


def test_lenient_encoder_reports_missing_weights_instead_of_failing(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    state = load_hf_state_dict(tmp_path)
    del state["bert.embeddings.token_type_embeddings.weight"]
    report = load_into(BertForPreTraining(load_hf_config(tmp_path)), state, strict_encoder=False)
    assert report.newly_initialized == ["bert.embeddings.token_type_embeddings.weight"]


def test_half_a_head_is_an_incomplete_checkpoint(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForPreTraining, tmp_path, vocab_size)
    state = load_hf_state_dict(tmp_path)
    del state["cls.predictions.transform.dense.bias"]
    with pytest.raises(PrefineError, match="lacks cls.predictions.transform.dense.bias of the same head"):
        load_into(BertForPreTraining(load_hf_config(tmp_path)), state)


def test_question_answering_weights_give_a_classifier_a_fresh_pooler(tmp_path, vocab_size):
    saved_hf_model(transformers.BertForQuestionAnswering, tmp_path, vocab_size)
    _, report = imported(tmp_path, lambda config: BertForSequenceClassification(config, num_labels=2))
    assert report.newly_initialized == ["bert.pooler (pooler)", "classifier"]
    assert report.ignored == ["qa_outputs.bias", "qa_outputs.weight"]


def test_sharded_safetensors_load_every_shard(tmp_path, vocab_size):
    saved_hf_model(transformers.BertModel, tmp_path, vocab_size)
    state = load_file(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2], "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    for shard, shard_names in shards.items():
        save_file({name: state[name] for name in shard_names}, tmp_path / shard)
    weight_map = {name: shard for shard, shard_names in shards.items() for name in shard_names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert is_hf_model_dir(tmp_path)
    loaded = load_hf_state_dict(tmp_path)
    assert sorted(loaded) == names and all(torch.equal(loaded[name], state[name]) for name in names)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(PrefineError, match="lists the shard model-00002-of-00002.safetensors, which is missing"):
        load_hf_state_dict(tmp_path)
