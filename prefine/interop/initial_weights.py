"""Where `--init` weights come from and how a freshly built model is filled from them.

`resolve_init` accepts three kinds of source: a prefine run folder (its best or latest checkpoint
and its tokenizer), a prefine checkpoint folder inside a run, or a Hugging Face BERT (or ELECTRA)
folder / Hub name. An ELECTRA source is handed on as its discriminator's encoder under BERT's
names, so everything that starts from a BERT encoder starts from it unchanged; `InitSource.electra`
keeps the whole pre-training state for what needs the generator (continued pre-training, fill-mask).

`load_initial_weights` fills a task model: the encoder loaded, the head left fresh.

Any task model keeps its encoder at `.bert`; the pre-trained state (a prefine checkpoint or an
imported Hugging Face one, already under BERT's names) is loaded into it with `load_into`, which
reports what stayed new. `--reinit-layers N` then puts the fresh weights of the top N blocks (and
the pooler) back, and `--from-scratch` keeps the whole model random. It sits below the tasks and
the recipes because both call it (a task's default `load_initial_weights`, `finetune`, and inference for `resolve_init`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.checkpoint import CHECKPOINTS_DIR, TOKENIZER_DIR, is_run_dir, load_model_config, load_weights, model_checkpoint_of
from prefine.errors import PrefineError
from prefine.interop.encoder_decoder import import_hf_encoder_decoder, is_hf_encoder_decoder_dir
from prefine.interop.huggingface import import_hf_checkpoint, load_into
from prefine.model import BertConfig, config_from_dict
from prefine.model.electra import ElectraWeights, electra_weights_from_checkpoint, is_electra_checkpoint_config
from prefine.tokenizer import load_tokenizer, tokenizer_fingerprint


def check_reinit_layers(reinit_layers: int, num_blocks: int) -> None:
    if not 0 <= reinit_layers <= num_blocks:
        raise PrefineError(f"--reinit-layers {reinit_layers} must be between 0 and the model's {num_blocks} blocks")


def load_initial_weights(model: nn.Module, init: Any, from_scratch: bool, announce: bool, reinit_layers: int = 0) -> None:
    """Fill a task model's encoder from `init` (an `InitSource`: its state_dict and description), or keep random weights.

    `reinit_layers` top encoder blocks (and the pooler) keep the fresh weights the model was built
    with instead of the loaded ones.
    """
    if from_scratch:
        if announce:
            print(f"init: random weights with the architecture of {init.description} (from scratch)")
        return
    encoder: Any = model.bert  # every task model keeps its encoder here
    blocks = encoder.encoder.layer
    check_reinit_layers(reinit_layers, len(blocks))
    # Copies: loading writes into the very tensors a state_dict refers to.
    fresh = [{key: value.clone() for key, value in block.state_dict().items()} for block in blocks[len(blocks) - reinit_layers :]]
    pooler = (
        {key: value.clone() for key, value in encoder.pooler.state_dict().items()} if reinit_layers and encoder.pooler is not None else None
    )
    report = load_into(model, init.state_dict)
    for block, state in zip(blocks[len(blocks) - reinit_layers :], fresh):
        block.load_state_dict(state)
    if pooler is not None:
        encoder.pooler.load_state_dict(pooler)
    if announce:
        renewed = f"; top {reinit_layers} blocks and pooler re-initialized" if reinit_layers else ""
        print(f"init: {init.description}; new: {', '.join(report.newly_initialized) or 'nothing'}{renewed}")


@dataclass
class InitSource:
    """Weights, config and tokenizer to start a run from, and where they came from."""

    config: BertConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    description: str
    run_dir: Path | None  # the prefine run that produced the weights, if any
    checkpoint: Path | None
    model_config_json: dict[str, Any]
    imported_from_hf: bool = False
    # An ELECTRA source: its whole pre-training state (config and state_dict above are its discriminator as BERT).
    electra: ElectraWeights | None = None


def run_dir_of_checkpoint(path: Path) -> Path | None:
    if path.parent.name == CHECKPOINTS_DIR and is_run_dir(path.parent.parent):
        return path.parent.parent
    return None


def resolve_init(source: str) -> InitSource:
    """Load the weights named by --init: a prefine run, a prefine checkpoint, or a Hugging Face model."""
    path = Path(source)
    if path.is_dir() and is_run_dir(path):
        checkpoint = model_checkpoint_of(path)
        return _from_prefine_checkpoint(checkpoint, path)
    run_dir = run_dir_of_checkpoint(path) if path.is_dir() else None
    if run_dir is not None:
        return _from_prefine_checkpoint(path, run_dir)
    imported = import_hf_encoder_decoder(path) if is_hf_encoder_decoder_dir(path) else import_hf_checkpoint(source)
    return InitSource(
        config=imported.config,
        state_dict=imported.state_dict,
        tokenizer=imported.tokenizer,
        description=f"Hugging Face checkpoint {imported.source}",
        run_dir=None,
        checkpoint=None,
        model_config_json=dataclasses.asdict(imported.config),
        imported_from_hf=True,
        electra=imported.electra,
    )


def _from_prefine_checkpoint(checkpoint: Path, run_dir: Path) -> InitSource:
    config_json = load_model_config(checkpoint)
    weights = load_weights(checkpoint)
    electra = None
    if is_electra_checkpoint_config(config_json):
        # Fine-tuning starts from the discriminator (ELECTRA's rule), given as a plain BERT encoder.
        electra = electra_weights_from_checkpoint(config_json, weights, str(checkpoint / "config.json"))
        config, weights = electra.config, electra.bert_encoder_state()
    else:
        config = config_from_dict(config_json, str(checkpoint / "config.json"))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    check_tokenizer_matches(tokenizer, config, run_dir / TOKENIZER_DIR, checkpoint)
    return InitSource(config, weights, tokenizer, f"prefine checkpoint {checkpoint}", run_dir, checkpoint, config_json, electra=electra)


def check_tokenizer_matches(tokenizer: Tokenizer, config: BertConfig, tokenizer_dir: Path, checkpoint: Path) -> None:
    if tokenizer.get_vocab_size() != config.vocab_size:
        raise PrefineError(
            f"tokenizer {tokenizer_dir} has {tokenizer.get_vocab_size()} tokens but checkpoint {checkpoint} was built for "
            f"{config.vocab_size}; use the tokenizer saved with that checkpoint"
        )
    recorded = load_model_config(checkpoint).get("tokenizer_fingerprint")
    if recorded and recorded != tokenizer_fingerprint(tokenizer):
        raise PrefineError(
            f"tokenizer {tokenizer_dir} is not the one checkpoint {checkpoint} was trained with (fingerprints differ); "
            "restore the run's own tokenizer folder"
        )
