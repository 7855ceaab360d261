"""`prefine compare`: does pre-training pay off? The same fine-tuning from pre-trained and from random weights.

For any registered task: fine-tune from --init's weights and from random weights of the same
shape on growing fractions of the labelled data, and tabulate the task's headline metric (the
one that picks the best checkpoint) with the gain. `--checkpoints` fine-tunes from each saved
checkpoint of a pre-training run instead (see `checkpoint_curve`), to show how much
pre-training is enough. Every input is checked before the first fine-tune starts, and the
task's own flags apply to every fine-tune (`prefine compare --task qa --max-length 256`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefine.checkpoint import load_model_config
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.recipes.checkpoint_curve import (
    CHECKPOINTS_HELP,
    PretrainCheckpoint,
    format_checkpoint_table,
    mlm_accuracy_by_step,
    plot_checkpoint_curve,
    select_checkpoints,
)
from prefine.recipes.finetune import FINETUNE_TRAINING_DEFAULTS, FinetuneRunConfig, add_task_data_arguments, run_finetune, task_data_from_args
from prefine.tasks.interface import FinetuneTask, get_task
from prefine.training import TrainingConfig


@dataclass
class CompareConfig:
    fractions: str = option("0.01,0.1,1.0", "comma-separated fractions of the training data")
    checkpoints: str = option("", CHECKPOINTS_HELP, metavar="all|STEP,STEP,...")

    def parsed_fractions(self) -> list[float]:
        try:
            fractions = [float(part) for part in self.fractions.split(",") if part.strip()]
        except ValueError:
            raise PrefineError(f"--fractions {self.fractions!r} must be comma-separated numbers such as 0.01,0.1,1.0") from None
        if not fractions or any(not 0 < fraction <= 1 for fraction in fractions):
            raise PrefineError("--fractions must be numbers in (0, 1], e.g. 0.01,0.1,1.0")
        return fractions


def add_command(subparsers) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="fine-tune from pre-trained vs random weights on growing label fractions (or from each pre-training checkpoint)",
        description="Fine-tune from --init's weights and from random weights at each label fraction and tabulate the metric. "
        "With --checkpoints, fine-tune from each saved checkpoint of the --init pre-training run instead, and plot the metric "
        "against pre-training time and tokens seen: the curve that says whether to pre-train longer.",
    )
    add_dataclass_arguments(compare.add_argument_group("comparison"), CompareConfig)
    add_dataclass_arguments(compare.add_argument_group("run"), FinetuneRunConfig, skip=("resume", "from_scratch", "train_fraction", "name"))
    add_task_data_arguments(compare)
    add_dataclass_arguments(compare.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS)
    compare.set_defaults(func=compare_from_args)


def _check_before_work(task: FinetuneTask, run: FinetuneRunConfig, data: Any) -> None:
    """Read --train and --eval as fine-tuning will, so a wrong path, column or label fails before hours of work."""
    if not run.eval:
        raise PrefineError("prefine compare needs --eval data to score the fine-tuned models")
    if not run.train:
        raise PrefineError(f"pass {task.train_hint} with the labelled data to fine-tune on")
    if not run.init:
        raise PrefineError("pass --init with the pre-trained run (or Hugging Face folder) to compare with random weights")
    task.check_inputs(run.train, run.eval, data)


def run_comparison(task: FinetuneTask, run: FinetuneRunConfig, data: Any, training: TrainingConfig, fractions: list[float], explicit_steps: bool) -> list[dict]:
    _check_before_work(task, run, data)
    out = Path(run.out or "runs/compare")
    rows = []
    for fraction in fractions:
        outcomes = {}
        for start in ("pretrained", "scratch"):
            run_dir = out / f"{start}-{fraction:g}"
            shutil.rmtree(run_dir, ignore_errors=True)
            this_run = dataclasses.replace(run, out=str(run_dir), from_scratch=start == "scratch", train_fraction=fraction, name="")
            print(f"\n== fraction {fraction:g}, {start}")
            outcomes[start] = run_finetune(task, this_run, data, training, explicit_steps, full_report=False)
        name, pretrained_value = task.headline(outcomes["pretrained"].metrics, outcomes["pretrained"].best_metric)
        _, scratch_value = task.headline(outcomes["scratch"].metrics, outcomes["scratch"].best_metric)
        rows.append(
            {
                "fraction": fraction,
                "examples": outcomes["pretrained"].num_train_examples,
                "metric": name,
                "pretrained": pretrained_value,
                "scratch": scratch_value,
                "gain": pretrained_value - scratch_value,
            }
        )
    return report_comparison(rows, format_comparison(rows), plot_comparison, out, "comparison")


def report_comparison(rows: list[dict], table: str, plot_rows, out: Path, json_key: str) -> list[dict]:
    """Print the table, draw compare.png, write compare.json and print the final JSON line."""
    print("\n" + table)
    plot = plot_rows(rows, out / "compare.png")
    if plot:
        print(f"plot: {plot}")
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({json_key: rows}))
    return rows


def run_checkpoint_comparison(
    task: FinetuneTask, run: FinetuneRunConfig, data: Any, training: TrainingConfig, fractions: list[float], explicit_steps: bool, checkpoints: str
) -> list[dict]:
    """Fine-tune from each chosen checkpoint of a pre-training run, and from random weights, at each fraction.

    Every fine-tune shares the data, seed and step budget of its fraction, so the rows differ only
    in where the encoder's weights came from. All inputs are checked before the first fine-tune.
    """
    if not run.eval:
        raise PrefineError("prefine compare needs --eval data to score the fine-tuned models")
    run_dir, chosen = select_checkpoints(run.init, checkpoints)
    positions = load_model_config(chosen[-1].path).get("max_position_embeddings")
    max_length, length_flag = task.max_length(data)
    if positions is not None and max_length > positions:
        raise PrefineError(f"{length_flag} {max_length} exceeds the model's {positions} positions; lower it")
    _check_before_work(task, run, data)

    out = Path(run.out or "runs/compare")
    starts = [(0, None)] + [(checkpoint.step, checkpoint) for checkpoint in chosen]
    total = len(starts) * len(fractions)
    print(f"fine-tuning {total} times: from random weights and from {len(chosen)} checkpoints of {run_dir} "
          f"(steps {', '.join(str(checkpoint.step) for checkpoint in chosen)}) at label fractions {', '.join(f'{f:g}' for f in fractions)}")
    rows = []
    done = 0
    for step, checkpoint in starts:
        results = []
        name = ""
        for fraction in fractions:
            done += 1
            label = "scratch" if checkpoint is None else f"step-{step}"
            fine_tune_dir = out / f"{label}-{fraction:g}"
            shutil.rmtree(fine_tune_dir, ignore_errors=True)
            this_run = dataclasses.replace(
                run, init=str(run_dir if checkpoint is None else checkpoint.path), out=str(fine_tune_dir),
                from_scratch=checkpoint is None, train_fraction=fraction, name="",
            )
            print(f"\n== [{done}/{total}] {'random weights' if checkpoint is None else f'pre-training step {step}'}, fraction {fraction:g}")
            outcome = run_finetune(task, this_run, data, training, explicit_steps, full_report=False)
            name, value = task.headline(outcome.metrics, outcome.best_metric)
            results.append({"fraction": fraction, "examples": outcome.num_train_examples, "value": value, "run": str(fine_tune_dir)})
        rows.append(
            {
                "step": step,
                "from_scratch": checkpoint is None,
                "checkpoint": None if checkpoint is None else str(checkpoint.path),
                "pretraining_seconds": 0.0 if checkpoint is None else checkpoint.elapsed_seconds,
                "tokens_seen": 0 if checkpoint is None else checkpoint.tokens_seen,
                "mlm_accuracy": _mlm_accuracy_at_start(run_dir, checkpoint),
                "metric": name,
                "results": results,
            }
        )
    return report_comparison(rows, format_checkpoint_table(rows), plot_checkpoint_curve, out, "checkpoint_comparison")


def _mlm_accuracy_at_start(run_dir: Path, checkpoint: PretrainCheckpoint | None) -> float | None:
    if checkpoint is not None:
        return checkpoint.mlm_accuracy
    # The pre-training run's evaluation before its first step (--eval-at-start) scores random weights.
    return mlm_accuracy_by_step(run_dir).get(0)


def format_comparison(rows: list[dict]) -> str:
    metric = rows[0]["metric"] if rows else "metric"
    lines = [
        f"| fraction | examples | pretrained {metric} | scratch {metric} | gain |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fraction']:g} | {row['examples']} | {row['pretrained']:.4f} | {row['scratch']:.4f} | {row['gain']:+.4f} |"
        )
    return "\n".join(lines)


def plot_comparison(rows: list[dict], path: Path) -> Path | None:
    """Learning curves (metric vs labelled examples) of both starts; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("(install matplotlib, e.g. pip install prefine[plot], for the learning-curve plot)")
        return None
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    examples = [row["examples"] for row in rows]
    axes.plot(examples, [row["pretrained"] for row in rows], marker="o", label="from pre-trained weights")
    axes.plot(examples, [row["scratch"] for row in rows], marker="s", label="from random weights")
    axes.set_xscale("log")
    axes.set_xlabel("labelled training examples")
    axes.set_ylabel(rows[0]["metric"] if rows else "metric")
    axes.set_title("Fine-tuning: pre-trained vs from scratch")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path


def compare_from_args(args: argparse.Namespace) -> int:
    comparison = from_args(CompareConfig, args)
    fractions = comparison.parsed_fractions()
    run = from_args(FinetuneRunConfig, args)
    task = get_task(run.task)
    data = task_data_from_args(task, args)
    training = from_args(TrainingConfig, args, base=FINETUNE_TRAINING_DEFAULTS)
    explicit_steps = args.max_steps is not None
    if comparison.checkpoints.strip():
        run_checkpoint_comparison(task, run, data, training, fractions, explicit_steps, comparison.checkpoints)
    else:
        run_comparison(task, run, data, training, fractions, explicit_steps)
    return 0
