"""ELECTRA runs to and from transformers' ELECTRA classes.

Export (`prefine export RUN --format hf --out DIR` on an ELECTRA run) writes two folders:

    DIR/              the discriminator as ElectraForPreTraining: what AutoModel, AutoModelForPreTraining
                      and every fine-tuning starts from (config.json, model.safetensors, tokenizer files)
    DIR/generator/    the generator as ElectraForMaskedLM: what AutoModelForMaskedLM and fill-mask use

Our parameter names already are transformers' (see prefine.model.electra); the generator's body
is renamed from `generator.*` to `electra.*`, and it gets its own copy of the shared embeddings,
because transformers' ElectraForMaskedLM is a model of its own. Its vocabulary projection is
tied to the word embeddings and left out, as transformers' save_pretrained leaves it out.

Import (`--init` of any recipe): a Hugging Face ELECTRA folder (ElectraForPreTraining, ElectraModel,
or a fine-tuned ELECTRA classifier) becomes the discriminator, handed to fine-tuning as a BERT
encoder; a `generator/` folder beside it (what the export writes) comes along for continued
pre-training and fill-mask. An encoder whose embedding_size differs from its hidden_size (Google's
ELECTRA-Small and KoELECTRA-Small: 128 vs 256) keeps its `embeddings_project` layer: the BertConfig
records `embedding_size` and prefine's encoder projects the narrow embeddings up as ElectraModel
does. Such an encoder fine-tunes and continues ELECTRA pre-training, but cannot become a
transformers BERT (whose classes have no projection), so exporting a model fine-tuned from it is
refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from prefine.checkpoint import CONFIG_FILE, WEIGHTS_FILE, give_default_permissions, load_weights
from prefine.errors import PrefineError
from prefine.interop.hf_files import is_hf_model_dir, load_hf_state_dict
from prefine.jsonio import read_json_object
from prefine.model import BertConfig, config_from_dict
from prefine.model.electra import (
    DISCRIMINATOR_ENCODER_PREFIX,
    DISCRIMINATOR_HEAD_PREFIX,
    ElectraPreTrainingModel,
    ElectraWeights,
    electra_weights_from_checkpoint,
)
from prefine.tokenizer import save_tokenizer

GENERATOR_DIR = "generator"
DISCRIMINATOR_ARCHITECTURE = "ElectraForPreTraining"
GENERATOR_ARCHITECTURE = "ElectraForMaskedLM"
# transformers' ElectraConfig keys left out of the BertConfig as read: the architecture names, and
# embedding_size, which `electra_bert_config` sets itself (only where it differs from hidden_size).
IGNORED_ELECTRA_KEYS = ("embedding_size", "model_type", "architectures")


def is_electra_config_json(values: dict) -> bool:
    return values.get("model_type") == "electra"


def hf_electra_config(config: BertConfig, architecture: str, embedding_size: int) -> dict:
    """The config.json transformers' ElectraConfig reads."""
    return {
        "model_type": "electra",
        "architectures": [architecture],
        **dataclasses.asdict(config),
        "embedding_size": embedding_size,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,  # the generator's vocabulary projection is the word-embedding table
        "dtype": "float32",  # transformers >= 5
        "torch_dtype": "float32",  # transformers 4
    }


def _float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in state.items()}


def electra_export_states(model: ElectraPreTrainingModel) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(ElectraForPreTraining state, ElectraForMaskedLM state) under transformers' names."""
    state = model.state_dict()
    discriminator = {
        name: tensor for name, tensor in state.items() if name.startswith((DISCRIMINATOR_ENCODER_PREFIX, DISCRIMINATOR_HEAD_PREFIX))
    }
    generator = {name: tensor for name, tensor in state.items() if name.startswith("electra.embeddings.")}
    for name, tensor in state.items():
        if name.startswith("generator."):
            generator["electra." + name[len("generator.") :]] = tensor
        elif name.startswith(("generator_predictions.", "generator_lm_head.")):
            generator[name] = tensor
    return discriminator, generator


def export_electra_hf(checkpoint: Path, tokenizer, config_json: dict, out_dir: Path) -> Path:
    """Write the discriminator to `out_dir` and the generator to `out_dir/generator` (see the module docstring)."""

    weights = electra_weights_from_checkpoint(config_json, load_weights(checkpoint), str(checkpoint / CONFIG_FILE))
    generator_config = weights.generator_config
    if generator_config is None:
        raise PrefineError(f"{checkpoint} has no ELECTRA generator config; export a checkpoint written by prefine pretrain")
    model = ElectraPreTrainingModel(weights.config, generator_config)
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split("\n\t")[1:2]).strip() or str(error).splitlines()[0]
        raise PrefineError(f"checkpoint {checkpoint} does not match its config.json: {detail}") from None
    discriminator, generator = electra_export_states(model)
    embedding_size = weights.config.embedding_width
    for folder, state, config, architecture in (
        (out_dir, discriminator, weights.config, DISCRIMINATOR_ARCHITECTURE),
        (out_dir / GENERATOR_DIR, generator, generator_config, GENERATOR_ARCHITECTURE),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        save_file(_float32(state), folder / WEIGHTS_FILE, metadata={"format": "pt"})
        give_default_permissions(folder / WEIGHTS_FILE)
        config_text = json.dumps(hf_electra_config(config, architecture, embedding_size), indent=2, ensure_ascii=False)
        (folder / CONFIG_FILE).write_text(config_text + "\n", encoding="utf-8")
        save_tokenizer(tokenizer, folder, model_max_length=config.max_position_embeddings)
    return out_dir


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    return read_json_object(
        path,
        fix="re-download the model",
        missing=f"{path} not found; point at a Hugging Face ELECTRA folder (config.json + model.safetensors)",
    )


def electra_bert_config(values: dict, source: str) -> BertConfig:
    """An ELECTRA config.json as the BertConfig of the same encoder (`embedding_size` kept when it is not the hidden size)."""
    for flag in ("is_decoder", "add_cross_attention"):
        if values.get(flag):
            raise PrefineError(f"{source}: {flag} is true; prefine imports bidirectional encoders only")
    config = config_from_dict({key: value for key, value in values.items() if key not in IGNORED_ELECTRA_KEYS}, source)
    embedding_size = values.get("embedding_size") or config.hidden_size
    if embedding_size != config.hidden_size:
        config = dataclasses.replace(config, embedding_size=embedding_size)
    return config


def _split_electra_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(encoder tensors under bare names `embeddings.*`/`encoder.*`, everything else) of an ELECTRA state dict."""
    encoder, rest = {}, {}
    for name, tensor in state.items():
        bare = name[len("electra.") :] if name.startswith("electra.") else name
        if bare.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue  # buffers older transformers saved
        if bare.startswith(("embeddings.", "embeddings_project.", "encoder.")):
            encoder[bare] = tensor
        else:
            rest[name] = tensor
    return encoder, rest


def _generator_weights(
    folder: Path, discriminator: BertConfig, embeddings: dict[str, torch.Tensor]
) -> tuple[BertConfig, dict[str, torch.Tensor]] | None:
    """The generator of `folder/generator` in prefine's names, or None when there is none."""
    generator_dir = folder / GENERATOR_DIR
    if not is_hf_model_dir(generator_dir):
        return None
    values = _read_config(generator_dir)
    source = str(generator_dir / CONFIG_FILE)
    if values.get("embedding_size") != discriminator.embedding_width:
        raise PrefineError(
            f"{source}: the generator's embedding_size {values.get('embedding_size')} is not the discriminator's "
            f"embedding width {discriminator.embedding_width}; they must share embeddings"
        )
    generator_config = config_from_dict({key: value for key, value in values.items() if key not in IGNORED_ELECTRA_KEYS}, source)
    state = {}
    for name, tensor in load_hf_state_dict(generator_dir).items():
        bare = name[len("electra.") :] if name.startswith("electra.") else name
        if bare.endswith(("position_ids", "token_type_ids")):
            continue
        if bare.startswith("embeddings."):
            # One set of embeddings serves both networks; a generator with its own cannot be represented.
            if bare not in embeddings or not torch.equal(embeddings[bare], tensor):
                raise PrefineError(
                    f"{source}: the generator's {name} differs from the discriminator's; prefine's ELECTRA shares embeddings"
                )
        elif bare.startswith(("embeddings_project.", "encoder.")):
            state["generator." + bare] = tensor
        elif name == "generator_lm_head.weight":
            if not torch.equal(tensor, embeddings.get("embeddings.word_embeddings.weight", tensor.new_empty(0))):
                raise PrefineError(
                    f"{source}: generator_lm_head.weight is not tied to the word embeddings; prefine's generator head is tied"
                )
        elif name.startswith(("generator_predictions.", "generator_lm_head.")):
            state[name] = tensor
    return generator_config, state


def import_hf_electra(folder: Path) -> tuple[BertConfig, dict[str, torch.Tensor], ElectraWeights]:
    """A Hugging Face ELECTRA discriminator folder as (BertConfig, BERT-named encoder state, ElectraWeights)."""
    values = _read_config(folder)
    source = str(folder / CONFIG_FILE)
    for architecture in values.get("architectures") or []:
        if architecture in (GENERATOR_ARCHITECTURE, "ElectraForCausalLM"):
            raise PrefineError(
                f"{folder} is an ELECTRA generator ({architecture}); start from the discriminator (ElectraForPreTraining), "
                "the network ELECTRA trains for downstream tasks"
            )
    config = electra_bert_config(values, source)
    encoder, rest = _split_electra_state(load_hf_state_dict(folder))
    if not encoder:
        raise PrefineError(f"{folder} holds no ELECTRA encoder weights (no embeddings.* or encoder.* tensors)")
    state = {DISCRIMINATOR_ENCODER_PREFIX + name: tensor for name, tensor in encoder.items()}
    state.update({name: tensor for name, tensor in rest.items() if name.startswith(DISCRIMINATOR_HEAD_PREFIX)})
    generator = _generator_weights(folder, config, {name: tensor for name, tensor in encoder.items() if name.startswith("embeddings.")})
    generator_config = None
    if generator is not None:
        generator_config, generator_state = generator
        state.update(generator_state)
    weights = ElectraWeights(config, generator_config, state)
    return config, weights.bert_encoder_state(), weights
