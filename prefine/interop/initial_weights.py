"""Filling a freshly built task model from pre-trained weights (`--init`): the encoder loaded, the head left fresh.

Any task model keeps its encoder at `.bert`; the pre-trained state (a prefine checkpoint or an
imported Hugging Face one, already under BERT's names) is loaded into it with `load_into`, which
reports what stayed new. `--reinit-layers N` then puts the fresh weights of the top N blocks (and
the pooler) back, and `--from-scratch` keeps the whole model random. It sits below the tasks and
the recipes because both call it: a task's default `load_initial_weights`, and `finetune` itself.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from prefine.errors import PrefineError
from prefine.interop.huggingface import load_into


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
