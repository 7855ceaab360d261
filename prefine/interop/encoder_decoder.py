"""The encoder-decoder and transformers: warm-starting from BERT weights, and export as EncoderDecoderModel.

Warm start (Rothe et al. 2020): any state dict that `--init` accepts for classification (a
prefine pre-training run, a Hugging Face BERT) fills the encoder and, a second time, the
decoder's embeddings and blocks; the decoder's LM head takes the checkpoint's masked-LM head
when it has one (its transform and bias; the projection is the tied word-embedding table). Only
the cross-attention sub-layers keep their fresh BERT-style initialization. A state dict that
already is an encoder-decoder (a prefine generation run, an exported EncoderDecoderModel) loads
whole, to continue fine-tuning.

Export: the model's parameter names already are transformers' EncoderDecoderModel names, so the
export is the state dict (tied LM projection left out, as `save_pretrained` does) plus an
"encoder-decoder" config.json holding a BERT encoder config and a BERT decoder config
(`is_decoder`, `add_cross_attention`), the special tokens generation needs
(`decoder_start_token_id` = [CLS], `eos_token_id` = [SEP], `pad_token_id` = [PAD]) and a
generation_config.json with the same ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from prefine.errors import PrefineError
from prefine.interop.huggingface import load_into
from prefine.model import BertConfig, BertForPreTraining
from prefine.model.encoder_decoder import BertEncoderDecoder
from prefine.tasks.interface import HFExport

# The LM head's projection and bias, which transformers ties to the word embeddings and
# cls.predictions.bias; never stored twice.
TIED_DECODER_WEIGHTS = ("decoder.cls.predictions.decoder.weight", "decoder.cls.predictions.decoder.bias")


def is_encoder_decoder_state(state: dict[str, torch.Tensor]) -> bool:
    return any(name.startswith("decoder.bert.") for name in state)


def warm_start(model: BertEncoderDecoder, state: dict[str, torch.Tensor]) -> list[str]:
    """Fill `model` from a BERT or encoder-decoder state dict; returns the parts that keep their fresh weights."""
    if is_encoder_decoder_state(state):
        weights = {name: tensor for name, tensor in state.items() if name not in TIED_DECODER_WEIGHTS and not name.endswith("position_ids")}
        try:
            model.load_state_dict(weights)
        except RuntimeError as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise PrefineError(f"the --init encoder-decoder does not match this model ({detail}); fine-tune from a BERT checkpoint instead") from None
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
    return {"model_type": "bert", **dataclasses.asdict(config), "position_embedding_type": "absolute", **extra}


def encoder_decoder_export(model: BertEncoderDecoder, config: BertConfig, head: dict[str, Any]) -> HFExport:
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
    tensors = {name: tensor.detach().to("cpu", torch.float32).clone().contiguous() for name, tensor in state.items() if name not in TIED_DECODER_WEIGHTS}
    values = {
        "model_type": "encoder-decoder",
        "architectures": ["EncoderDecoderModel"],
        "is_encoder_decoder": True,
        "encoder": _bert_config(config, architectures=["BertModel"], is_decoder=False, add_cross_attention=False, tie_word_embeddings=True),
        "decoder": _bert_config(config, architectures=["BertLMHeadModel"], is_decoder=True, add_cross_attention=True, tie_word_embeddings=True),
        "tie_encoder_decoder": bool(model.share_encoder_decoder),
        **ids,
        "dtype": "float32",  # transformers >= 5
        "torch_dtype": "float32",  # transformers 4
    }
    generation = {**ids, "max_length": int(head.get("max_target_length", 64)), "_from_model_config": False}
    return HFExport(tensors, {"config.json": values, "generation_config.json": generation})
