"""`prefine evaluate` and `prefine predict`: score or apply any fine-tuned run, whatever its task.

Both load the run once through `prefine.inference.load_run` (model in eval mode, tokenizer
prepared once) and hand over to the run's task predictor; `--backend onnx|onnx-int8` has ONNX
Runtime compute the encoder on the CPU (graphs cached under $PREFINE_CACHE), the task's code
unchanged around it. Their flags come from the dataclasses
below plus each task's `predict_config` (e.g. QA's --question and --context); a task flag
given to a run of another task is an error, not silently ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefine.atomic_files import check_output_path, remove_dead_partials_of, write_atomically
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.interop.onnx_runtime import BACKEND_HELP, Backend
from prefine.recipes.common import default_cache_dir
from prefine.tasks.interface import Predictor, all_tasks, reject_foreign_flags
from prefine.training import resolve_device


@dataclass
class EvaluateConfig:
    run: str = option("", "a fine-tuned run: its folder, or its name in the registry", positional=True)
    data: str = option("", "labelled data in the run's training format (same columns, or SQuAD JSON for QA)")
    batch_size: int = option(64, "examples per batch")
    backend: Backend = option("torch", BACKEND_HELP)
    registry: str = option("", "registry to look a run name up in (default: $PREFINE_REGISTRY or runs/registry.sqlite)")


@dataclass
class PredictConfig:
    run: str = option("", "a fine-tuned run: its folder, or its name in the registry", positional=True)
    data: str = option(
        "-", "inputs: a file in the run's format (.tsv/.csv/.jsonl; .txt or - for one text per line on stdin; SQuAD JSON for QA)"
    )
    format: Literal["jsonl", "tsv"] = option("jsonl", "output format of classification predictions")
    output: str = option("-", "where to write predictions (- for stdout)")
    batch_size: int = option(64, "examples per batch")
    backend: Backend = option("torch", BACKEND_HELP)
    registry: str = option("", "registry to look a run name up in (default: $PREFINE_REGISTRY or runs/registry.sqlite)")


def add_commands(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="score a fine-tuned run on labelled data (any task)")
    add_dataclass_arguments(evaluate, EvaluateConfig)
    evaluate.set_defaults(func=evaluate_from_args)

    predict = subparsers.add_parser(
        "predict", help="apply a fine-tuned run to new inputs: a file, one text per line on stdin, or task flags"
    )
    add_dataclass_arguments(predict, PredictConfig)
    seen: set[str] = set(PredictConfig.__dataclass_fields__)
    for task in all_tasks():
        if task.predict_config is not None:
            add_dataclass_arguments(predict.add_argument_group(f"{task.name} runs"), task.predict_config, skip=tuple(seen))
            seen |= set(task.predict_config.__dataclass_fields__)
    predict.set_defaults(func=predict_from_args)


def evaluate_from_args(args: argparse.Namespace) -> int:

    config = from_args(EvaluateConfig, args)
    if not config.data:
        raise PrefineError("pass --data FILE with labelled examples to score the run on")
    predictor = load_run(config.run, resolve_device("auto"), config.registry, config.backend, default_cache_dir())
    if not isinstance(predictor, Predictor):
        raise PrefineError(
            f"{config.run} is a pre-training run; evaluate the runs fine-tuned from it (prefine finetune --init {config.run})"
        )
    evaluation = predictor.evaluate_source(config.data, config.batch_size)
    # On stderr, beside the data notes: stdout stays the table and the JSON line of scores alone,
    # so the same data in two formats prints the same line.
    print(_selection_of(predictor.saved, config.data), file=sys.stderr)
    print(evaluation.table)
    print(json.dumps(evaluation.json_line(), ensure_ascii=False))
    return 0


def _same_file(first: str | None, second: str) -> bool:
    if not first:
        return False
    try:
        return Path(first).resolve() == Path(second).resolve()
    except OSError:
        return first == second


def _selection_of(saved: dict, data: str) -> str:
    """Which data picked the run's checkpoint, and whether it is the data being scored now (an optimistic score)."""
    scoring = saved.get("scoring")
    best = (saved.get("training") or {}).get("best_metric") or "its metric"
    if scoring is None:
        # Runs from before prefine recorded it: their --eval chose the checkpoint.
        selected = (saved.get("run") or {}).get("eval") or None
        how = f"--eval {selected}" if selected else "nothing (the last checkpoint)"
    else:
        selected, how = scoring.get("selected_on"), scoring.get("selected_how") or "nothing (the last checkpoint)"
    line = f"checkpoint chosen by {best} on {how}"
    if _same_file(selected, data):
        line += f"; {data} is that same data, so this score is optimistic: score data that chose nothing"
    return line


def predict_from_args(args: argparse.Namespace) -> int:

    config = from_args(PredictConfig, args)
    if config.output != "-":
        check_output_path(Path(config.output), "--output")
    predictor = load_run(config.run, resolve_device("auto"), config.registry, config.backend, default_cache_dir())
    if not isinstance(predictor, Predictor):
        raise PrefineError(f'{config.run} is a pre-training run; try it with prefine fill-mask {config.run} "text with a [MASK]"')
    task = predictor.task
    reject_foreign_flags(
        args, task.predict_config, [other.predict_config for other in all_tasks() if other.predict_config], f"a {task.name} run"
    )
    options = from_args(task.predict_config, args) if task.predict_config else None
    if config.output == "-":
        predictor.predict_cli(config.data, options, sys.stdout, config.format, config.batch_size)
        return 0
    output = Path(config.output)
    remove_dead_partials_of(output)

    def write(partial: Path) -> int:
        with open(partial, "w", encoding="utf-8") as handle:
            return predictor.predict_cli(config.data, options, handle, config.format, config.batch_size)

    # A failed or killed prediction never leaves a half-written file under the requested name.
    count = write_atomically(output, write)
    print(f"{count} predictions written to {output}", file=sys.stderr)
    return 0
