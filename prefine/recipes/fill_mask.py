"""`prefine fill-mask`: show what a pre-trained model predicts for each [MASK] in a sentence.

An ELECTRA run answers with its generator, the half of it that was trained to fill masks (the
discriminator only tells replaced tokens from original ones).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from prefine.checkpoint import is_run_dir
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.inference import MaskedLMPredictor, load_run, masked_lm_from_init
from prefine.recipes.common import resolve_init


@dataclass
class FillMaskConfig:
    model: str = option(
        "", "a prefine pre-training run (its folder, or its name in the registry) or a Hugging Face BERT folder", positional=True
    )
    text: list[str] = option([], "text containing one or more [MASK] tokens", positional=True)
    top_k: int = option(5, "candidates to show per mask")
    registry: str = option("", "registry to look a run name up in (default: $PREFINE_REGISTRY or runs/registry.sqlite)")


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pre-trained model")
    add_dataclass_arguments(parser, FillMaskConfig)
    parser.set_defaults(func=run_from_args)


def load_masked_lm(model_source: str, registry: str = "") -> MaskedLMPredictor:
    """A prefine pre-training run (folder or registry name) or an outside BERT checkpoint, ready to fill masks."""

    path = Path(model_source)
    if not (path.is_dir() and not is_run_dir(path)):
        predictor = load_run(model_source, "cpu", registry)
        if not isinstance(predictor, MaskedLMPredictor):
            raise PrefineError(f"{model_source} is a fine-tuned run without its masked-LM head; pass the pre-training run it started from")
        return predictor

    return masked_lm_from_init(resolve_init(model_source), torch.device("cpu"))


def fill_mask(model_source: str, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (token, probability) for each [MASK] in `text`, left to right."""
    return load_masked_lm(model_source).fill_mask(text, top_k)


def run_from_args(args: argparse.Namespace) -> int:
    config = from_args(FillMaskConfig, args)
    text = " ".join(config.text)
    if config.top_k < 1:
        raise PrefineError(f"--top-k {config.top_k} must be at least 1")
    (result,) = load_masked_lm(config.model, config.registry).predict_records([{"text": text}], top_k=config.top_k)
    for index, candidates in enumerate(result["masks"], 1):
        shown = "  ".join(f"{candidate['token']} ({candidate['probability']:.1%})" for candidate in candidates)
        print(f"[MASK] {index}: {shown}")
    print(f"-> {result['filled']}")
    return 0
