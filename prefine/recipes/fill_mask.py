"""`prefine fill-mask`: show what a pre-trained model predicts for each [MASK] in a sentence.

An ELECTRA run answers with its generator, the half of it that was trained to fill masks (the
discriminator only tells replaced tokens from original ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from prefine.errors import PrefineError
from prefine.model import BertForPreTraining
from prefine.model.electra import ElectraPreTrainingModel, load_electra_state
from prefine.recipes.common import resolve_init


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pre-trained model")
    parser.add_argument("model", help="a prefine pre-training run folder (or Hugging Face BERT folder)")
    parser.add_argument("text", nargs="+", help="text containing one or more [MASK] tokens")
    parser.add_argument("--top-k", type=int, default=5, help="candidates to show per mask (default: 5)")
    parser.set_defaults(func=run_from_args)


def fill_mask(model_source: str, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (token, probability) for each [MASK] in `text`, left to right."""
    init = resolve_init(model_source)
    if init.electra is not None:
        if not init.electra.has_generator:
            raise PrefineError(f"{init.description} is an ELECTRA discriminator without its generator; fill-mask needs the generator (a prefine ELECTRA run has it)")
        model = ElectraPreTrainingModel(init.electra.config, init.electra.generator_config)
        load_electra_state(model, init.electra.state_dict)
        dense_logits = model.generator_dense_logits
    else:
        model = BertForPreTraining(init.config)
        from prefine.interop import load_into

        load_into(model, init.state_dict)
        dense_logits = model.dense_prediction_logits
    model.eval()
    tokenizer = init.tokenizer
    mask_id = tokenizer.token_to_id("[MASK]")
    encoding = tokenizer.encode(text)
    ids = torch.tensor([encoding.ids])
    positions = (ids[0] == mask_id).nonzero().flatten()
    if len(positions) == 0:
        raise PrefineError('the text has no [MASK] token; write it where a word should be predicted, e.g. "the [MASK] sat on the mat"')
    with torch.no_grad():
        logits = dense_logits(ids, torch.tensor([encoding.type_ids]), torch.ones_like(ids))[0, positions]
    probabilities = logits.softmax(-1)
    top = probabilities.topk(top_k, dim=-1)
    return [
        [(tokenizer.id_to_token(int(token)), float(probability)) for probability, token in zip(row_p, row_t)]
        for row_p, row_t in zip(top.values, top.indices)
    ]


def run_from_args(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    if not Path(args.model).exists():
        raise PrefineError(f"model folder not found: {args.model}; pass a run folder created by prefine pretrain")
    predictions = fill_mask(args.model, text, args.top_k)
    for index, candidates in enumerate(predictions, 1):
        shown = "  ".join(f"{token} ({probability:.1%})" for token, probability in candidates)
        print(f"[MASK] {index}: {shown}")
    filled = text
    for candidates in predictions:
        filled = filled.replace("[MASK]", candidates[0][0].removeprefix("##"), 1)
    print(f"-> {filled}")
    return 0
