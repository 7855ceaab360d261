"""`prefine fill-mask`: show what a pre-trained model predicts for each [MASK] in a sentence."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from prefine.errors import PrefineError
from prefine.model import BertForPreTraining
from prefine.recipes.common import resolve_init


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pre-trained model")
    parser.add_argument("model", help="a prefine pre-training run (folder, or name or id in the registry) or a Hugging Face BERT folder")
    parser.add_argument("text", nargs="+", help="text containing one or more [MASK] tokens")
    parser.add_argument("--top-k", type=int, default=5, help="candidates to show per mask (default: 5)")
    parser.add_argument("--registry", default=None, help="registry to look run names up in (found as for `prefine runs`)")
    parser.set_defaults(func=run_from_args)


def fill_mask(model_source: str, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (token, probability) for each [MASK] in `text`, left to right."""
    init = resolve_init(model_source)
    model = BertForPreTraining(init.config)
    from prefine.interop import load_into

    load_into(model, init.state_dict)
    model.eval()
    tokenizer = init.tokenizer
    mask_id = tokenizer.token_to_id("[MASK]")
    encoding = tokenizer.encode(text)
    ids = torch.tensor([encoding.ids])
    positions = (ids[0] == mask_id).nonzero().flatten()
    if len(positions) == 0:
        raise PrefineError('the text has no [MASK] token; write it where a word should be predicted, e.g. "the [MASK] sat on the mat"')
    with torch.no_grad():
        logits = model.dense_prediction_logits(ids, torch.tensor([encoding.type_ids]), torch.ones_like(ids))[0, positions]
    probabilities = logits.softmax(-1)
    top = probabilities.topk(top_k, dim=-1)
    return [
        [(tokenizer.id_to_token(int(token)), float(probability)) for probability, token in zip(row_p, row_t)]
        for row_p, row_t in zip(top.values, top.indices)
    ]


def model_folder(reference: str, registry: str | None) -> Path:
    """The folder named by `reference`: itself if it exists, else the folder of the registry run of that name or id."""
    if Path(reference).exists():
        return Path(reference)
    from prefine.registry import RunRegistry
    from prefine.registry.store import find_registry

    path = find_registry(registry)
    if not path.is_file():
        raise PrefineError(f"model folder not found: {reference}, and no run registry at {path} to look it up in; pass a run folder or --registry PATH")
    with RunRegistry(path) as opened:
        try:
            run = opened.get(reference)
        except PrefineError:
            raise PrefineError(f"{reference} is neither a folder nor a run recorded in {path}; `prefine runs` lists the runs") from None
    if not run.artifact_exists:
        raise PrefineError(f"run {run.name}'s folder {run.artifact_path} is gone (moved or deleted); pass its new location")
    return run.artifact_path


def run_from_args(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    predictions = fill_mask(str(model_folder(args.model, args.registry)), text, args.top_k)
    for index, candidates in enumerate(predictions, 1):
        shown = "  ".join(f"{token} ({probability:.1%})" for token, probability in candidates)
        print(f"[MASK] {index}: {shown}")
    filled = text
    for candidates in predictions:
        filled = filled.replace("[MASK]", candidates[0][0].removeprefix("##"), 1)
    print(f"-> {filled}")
    return 0
