"""The encoder-decoder and transformers: warm-starting from BERT weights, and export as EncoderDecoderModel.

Warm start (Rothe et al. 2020): any state dict that `--init` accepts for classification (a
prefine pre-training run, a Hugging Face BERT) fills the encoder and, a second time, the
decoder's embeddings and blocks; the decoder's LM head takes the checkpoint's masked-LM head
when it has one (its transform and bias; the projection is the tied word-embedding table). Only
the cross-attention sub-layers keep their fresh BERT-style initialization. A state dict that
already is an encoder-decoder (a prefine generation run, an exported EncoderDecoderModel) loads
whole, to continue fine-tuning.

Import: a transformers EncoderDecoderModel folder of two BERTs of the same shape (what export
writes, or a bert2bert trained with transformers) works as `--init`: its weights continue
fine-tuning as they are, and its encoder alone can start a classifier or QA model (the encoder's
weights are offered under the `bert.` names a BERT checkpoint uses, too).

Export: the model's parameter names already are transformers' EncoderDecoderModel names, so the
export is the state dict (tied LM projection left out, as `save_pretrained` does) plus an
"encoder-decoder" config.json holding a BERT encoder config and a BERT decoder config
(`is_decoder`, `add_cross_attention`), the special tokens generation needs
(`decoder_start_token_id` = [CLS], `eos_token_id` = [SEP], `pad_token_id` = [PAD]) and a
generation_config.json with the same ids.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from prefine.errors import PrefineError
from prefine.interop.hf_files import HFExport
from prefine.interop.huggingface import CONFIG_FILE, ImportedCheckpoint, is_hf_model_dir, load_hf_state_dict, load_hf_tokenizer, load_into
from prefine.jsonio import read_json_object
from prefine.model import BertConfig, BertForPreTraining, bert_config_fields, config_from_dict
from prefine.model.encoder_decoder import BertEncoderDecoder
from prefine.tokenizer import normalizer_settings

# The LM head's projection and bias, which transformers ties to the word embeddings and
# cls.predictions.bias; never stored twice.
TIED_DECODER_WEIGHTS = ("decoder.cls.predictions.decoder.weight", "decoder.cls.predictions.decoder.bias")


def is_encoder_decoder_state(state: dict[str, torch.Tensor]) -> bool:
    return any(name.startswith("decoder.bert.") for name in state)


def _read_config(folder: Path) -> dict[str, Any]:
    # Also a probe (is_hf_encoder_decoder_dir): an unreadable config.json only means "not an
    # encoder-decoder", and the BERT importer that is tried next reports what is wrong with it.
    try:
        return read_json_object(folder / CONFIG_FILE, fix="re-download the model")
    except PrefineError:
        return {}


def is_hf_encoder_decoder_dir(path: Path) -> bool:
    """True for a transformers folder whose config.json says model_type "encoder-decoder"."""
    path = Path(path)
    return path.is_dir() and is_hf_model_dir(path) and _read_config(path).get("model_type") == "encoder-decoder"


def import_hf_encoder_decoder(folder: Path) -> ImportedCheckpoint:
    """A transformers EncoderDecoderModel(BERT, BERT) folder: the shared BERT shape, all weights, the tokenizer."""
    folder = Path(folder)
    values = _read_config(folder)
    encoder, decoder = values.get("encoder") or {}, values.get("decoder") or {}
    source = str(folder / CONFIG_FILE)
    if encoder.get("model_type") != "bert" or decoder.get("model_type") != "bert":
        raise PrefineError(
            f"{source}: encoder and decoder must both be BERT (found {encoder.get('model_type')} and {decoder.get('model_type')}); "
            "prefine's encoder-decoder is BERT2BERT"
        )
    if not decoder.get("add_cross_attention"):
        raise PrefineError(
            f"{source}: the decoder has no cross-attention (add_cross_attention is false); this is not a trained encoder-decoder"
        )
    config = config_from_dict({key: value for key, value in encoder.items() if key not in ("is_decoder", "add_cross_attention")}, source)
    decoder_config = config_from_dict(
        {key: value for key, value in decoder.items() if key not in ("is_decoder", "add_cross_attention")}, source
    )
    if config != decoder_config:
        different = [
            field.name for field in dataclasses.fields(config) if getattr(config, field.name) != getattr(decoder_config, field.name)
        ]
        raise PrefineError(
            f"{source}: encoder and decoder differ in {', '.join(different)}; prefine's encoder-decoder needs two BERTs of one shape"
        )
    state = load_hf_state_dict(folder)
    # The encoder under the names of a plain BERT checkpoint too, so a classifier can start from it.
    state.update({"bert." + name[len("encoder.") :]: tensor for name, tensor in list(state.items()) if name.startswith("encoder.")})
    tokenizer = load_hf_tokenizer(folder)
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise PrefineError(
            f"{folder}: the tokenizer has {tokenizer.get_vocab_size()} tokens but the model embeds only {config.vocab_size}; "
            "the folder mixes files of different models"
        )
    return ImportedCheckpoint(config, state, tokenizer, str(folder), normalizer_settings(tokenizer)[0])


def warm_start(model: BertEncoderDecoder, state: dict[str, torch.Tensor]) -> list[str]:
    """Fill `model` from a BERT or encoder-decoder state dict; returns the parts that keep their fresh weights."""
    if is_encoder_decoder_state(state):
        weights = {
            name: tensor
            for name, tensor in state.items()
            if name not in TIED_DECODER_WEIGHTS and not name.endswith("position_ids") and not name.startswith("bert.")
        }
        try:
            model.load_state_dict(weights)
        except RuntimeError as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise PrefineError(
                f"the --init encoder-decoder does not match this model ({detail}); fine-tune from a BERT checkpoint instead"
            ) from None
        return ["nothing"]
    donor = BertForPreTraining(model.config)
    report = load_into(donor, state)
    encoder_state = donor.bert.state_dict()
    model.encoder.load_state_dict(encoder_state)
    fresh = ["cross-attention"]
    if not model.share_encoder_decoder:
        body = {name: tensor for name, tensor in encoder_state.items() if not name.startswith("pooler.")}
        missing, unexpected = model.decoder.bert.load_state_dict(body, strict=False)
        if unexpected or any(".crossattention." not in name for name in missing):
            raise AssertionError(f"decoder warm start mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if any(part.startswith("cls.predictions") for part in report.newly_initialized):
        fresh.append("LM head (the checkpoint has no masked-LM head)")
    else:
        predictions = model.decoder.cls.predictions
        predictions.transform.load_state_dict(donor.cls.predictions.transform.state_dict())
        with torch.no_grad():
            predictions.bias.copy_(donor.cls.predictions.bias)
    return fresh


def _bert_config(config: BertConfig, **extra: Any) -> dict[str, Any]:
    return {"model_type": "bert", **bert_config_fields(config), "position_embedding_type": "absolute", **extra}


def encoder_decoder_export(model: torch.nn.Module, config: BertConfig, head: dict[str, Any]) -> HFExport:
    """Tensors and JSON files of a transformers EncoderDecoderModel folder."""
    if not isinstance(model, BertEncoderDecoder):
        raise PrefineError("only an encoder-decoder run exports as EncoderDecoderModel; this checkpoint has no decoder")
    ids = {
        "decoder_start_token_id": int(head["decoder_start_token_id"]),
        "eos_token_id": int(head["eos_token_id"]),
        "pad_token_id": int(config.pad_token_id),
    }
    # Every tensor under every name transformers expects, shared ones (BERTShare) included: a copy
    # per name loads the same whether or not transformers re-ties them.
    state = torch.nn.Module.state_dict(model)
    tensors = {
        name: tensor.detach().to("cpu", torch.float32).clone().contiguous()
        for name, tensor in state.items()
        if name not in TIED_DECODER_WEIGHTS
    }
    values = {
        "model_type": "encoder-decoder",
        "architectures": ["EncoderDecoderModel"],
        "is_encoder_decoder": True,
        "encoder": _bert_config(config, architectures=["BertModel"], is_decoder=False, add_cross_attention=False, tie_word_embeddings=True),
        "decoder": _bert_config(
            config, architectures=["BertLMHeadModel"], is_decoder=True, add_cross_attention=True, tie_word_embeddings=True
        ),
        "tie_encoder_decoder": bool(model.share_encoder_decoder),
        **ids,
        "dtype": "float32",  # transformers >= 5
        "torch_dtype": "float32",  # transformers 4
    }
    generation = {**ids, "max_length": int(head.get("max_target_length", 64)), "_from_model_config": False}
    return HFExport(tensors, {"config.json": values, "generation_config.json": generation})
