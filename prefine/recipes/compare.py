"""`prefine compare`: does pre-training pay off? The same fine-tuning from pre-trained and from random weights.

For any registered task: fine-tune from --init's weights and from random weights of the same
shape on growing fractions of the labelled data, `--seeds` times each, and tabulate the task's
headline metric (mean, spread and every seed) with the gain and its 95% interval paired over
seeds (`prefine.metrics.intervals`). No tabulated number comes from data that chose a
checkpoint: the report is --test (or --eval without --test), and the checkpoint is chosen on
--eval beside --test, or on a dev split of --train carved once for every fine-tune
(`prefine.tasks.selection`). `--checkpoints` fine-tunes from each saved
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
from prefine.metrics.intervals import mean_and_spread, paired_gain
from prefine.recipes.checkpoint_curve import (
    CHECKPOINTS_HELP,
    PretrainCheckpoint,
    format_checkpoint_table,
    mlm_accuracy_by_step,
    plot_checkpoint_curve,
    select_checkpoints,
)
from prefine.recipes.finetune import (
    FINETUNE_TRAINING_DEFAULTS,
    FinetuneRunConfig,
    add_task_data_arguments,
    check_data_before_work,
    run_finetune,
    task_data_from_args,
)
from prefine.tasks.interface import FinetuneTask, get_task
from prefine.tasks.selection import DEV_SPLIT_FOLDER, Scoring, carve_dev_split
from prefine.training import TrainingConfig


@dataclass
class CompareConfig:
    fractions: str = option("0.01,0.1,1.0", "comma-separated fractions of the training data")
    checkpoints: str = option("", CHECKPOINTS_HELP, metavar="all|STEP,STEP,...")
    seeds: int = option(
        3,
        "fine-tune every start this many times (seeds --seed, --seed+1, ...: head init, data order and label subset differ, "
        "the pre-trained weights do not); the gain gets a 95 percent t-interval over the paired seeds, which needs 2 or more",
    )

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise PrefineError(f"--seeds {self.seeds} must be at least 1 (3 or more give the gain an interval worth reading)")

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
        description="Fine-tune from --init's weights and from random weights at each label fraction, with several seeds, and "
        "tabulate the reported metric with the gain and its 95% interval. The data that chooses a checkpoint is never the data "
        "reported: the report is --test (or --eval when there is no --test), and checkpoints are chosen on --eval when --test is "
        "given, else on a fixed dev split of --train. With --checkpoints, fine-tune from each saved checkpoint of the --init "
        "pre-training run instead, and plot the metric against pre-training time and tokens seen: the curve that says whether to "
        "pre-train longer.",
    )
    add_dataclass_arguments(compare.add_argument_group("comparison"), CompareConfig)
    add_dataclass_arguments(compare.add_argument_group("run"), FinetuneRunConfig, skip=("resume", "from_scratch", "train_fraction", "name"))
    add_task_data_arguments(compare)
    add_dataclass_arguments(compare.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS)
    compare.set_defaults(func=compare_from_args)


def _require_held_out(run: FinetuneRunConfig) -> None:
    if not run.eval and not run.test:
        raise PrefineError(
            "prefine compare needs held-out data to score the fine-tuned models: pass --eval FILE (or --eval DEV --test FILE)"
        )


def _check_before_work(task: FinetuneTask, run: FinetuneRunConfig, data: Any) -> None:
    """Read --train, --eval and --test as fine-tuning will, so a wrong path, column or label fails before hours of work."""
    _require_held_out(run)
    if not run.train:
        raise PrefineError(f"pass {task.train_hint} with the labelled data to fine-tune on")
    if not run.init:
        raise PrefineError("pass --init with the pre-trained run (or Hugging Face folder) to compare with random weights")
    check_data_before_work(task, run, data)


def comparison_scoring(task: FinetuneTask, run: FinetuneRunConfig, data: Any, out: Path) -> Scoring:
    """What chooses and what reports in a comparison: it never scores the data that chose a checkpoint.

    The report is --test, or --eval when there is no --test. Checkpoints are chosen on --eval when
    --test is given beside it, else on a dev split of --train carved once (into `out`) and shared
    by every start, seed and fraction, so the rows differ only in where the weights came from.
    """
    if run.test and run.eval:
        return Scoring(selection=run.eval, selection_how=f"--eval {run.eval}", report=run.test)
    carved = carve_dev_split(task, run.train, data, run.dev_fraction, run.dev_seed, out / DEV_SPLIT_FOLDER)
    carved.report = run.test or run.eval
    return carved


def _fine_tune_run(run: FinetuneRunConfig, scoring: Scoring, run_dir: Path, from_scratch: bool, fraction: float) -> FinetuneRunConfig:
    """One fine-tune of the comparison, with the files it actually reads on record (so `finetune --resume` reads them too)."""
    train = scoring.dev_split["train"] if scoring.dev_split else run.train
    return dataclasses.replace(
        run,
        out=str(run_dir),
        from_scratch=from_scratch,
        train_fraction=fraction,
        name="",
        train=train,
        eval=scoring.selection or "",
        test=scoring.report or "",
    )


def seed_list(training: TrainingConfig, count: int) -> list[int]:
    return [training.seed + offset for offset in range(count)]


def run_comparison(
    task: FinetuneTask,
    run: FinetuneRunConfig,
    data: Any,
    training: TrainingConfig,
    fractions: list[float],
    explicit_steps: bool,
    seeds: int = 3,
) -> list[dict]:
    _check_before_work(task, run, data)
    out = Path(run.out or "runs/compare")
    scoring = comparison_scoring(task, run, data, out)
    seed_values = seed_list(training, seeds)
    print(
        f"comparison: {scoring.line()} per fine-tune; "
        f"{len(seed_values)} seed(s) ({', '.join(map(str, seed_values))}) per start and fraction"
    )
    rows = []
    total, done = len(fractions) * 2 * len(seed_values), 0
    for fraction in fractions:
        values: dict[str, list[float]] = {"pretrained": [], "scratch": []}
        name, examples = "", 0
        for seed in seed_values:
            for start in ("pretrained", "scratch"):
                done += 1
                run_dir = out / f"{start}-{fraction:g}" / f"seed-{seed}"
                shutil.rmtree(run_dir, ignore_errors=True)
                this_run = _fine_tune_run(run, scoring, run_dir, start == "scratch", fraction)
                print(f"\n== [{done}/{total}] fraction {fraction:g}, {start}, seed {seed}")
                outcome = run_finetune(
                    task, this_run, data, dataclasses.replace(training, seed=seed), explicit_steps, full_report=False, scoring=scoring
                )
                name, value = task.headline(outcome.metrics, outcome.best_metric)
                values[start].append(value)
                examples = outcome.num_train_examples
        rows.append(comparison_row(fraction, examples, name, values["pretrained"], values["scratch"], seed_values, scoring))
    return report_comparison(rows, format_comparison(rows), plot_comparison, out, "comparison")


def comparison_row(
    fraction: float, examples: int, metric: str, pretrained: list[float], scratch: list[float], seeds: list[int], scoring: Scoring
) -> dict:
    """One fraction's row: both starts' mean, spread and per-seed values, and the paired gain with its interval."""
    gain = paired_gain(pretrained, scratch)
    pretrained_mean, pretrained_std = mean_and_spread(pretrained)
    scratch_mean, scratch_std = mean_and_spread(scratch)
    return {
        "fraction": fraction,
        "examples": examples,
        "metric": metric,
        "pretrained": pretrained_mean,
        "pretrained_std": pretrained_std,
        "scratch": scratch_mean,
        "scratch_std": scratch_std,
        "gain": gain.mean,
        "gain_low": gain.low,
        "gain_high": gain.high,
        "verdict": gain.verdict,
        "seeds": seeds,
        "pretrained_per_seed": pretrained,
        "scratch_per_seed": scratch,
        "interval": INTERVAL_METHOD,
        "selected_on": scoring.selection_how,
        "reported_on": scoring.report,
    }


INTERVAL_METHOD = "95% Student t over seeds, paired (seed i of both starts shares subset, order and head init)"


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
    task: FinetuneTask,
    run: FinetuneRunConfig,
    data: Any,
    training: TrainingConfig,
    fractions: list[float],
    explicit_steps: bool,
    checkpoints: str,
    seeds: int = 3,
) -> list[dict]:
    """Fine-tune from each chosen checkpoint of a pre-training run, and from random weights, at each fraction.

    Every fine-tune shares the data, seeds, selection split and step budget of its fraction, so the
    rows differ only in where the encoder's weights came from. All inputs are checked before the
    first fine-tune; like `run_comparison`, no reported value comes from the data that chose it.
    """
    _require_held_out(run)
    run_dir, chosen = select_checkpoints(run.init, checkpoints)
    positions = load_model_config(chosen[-1].path).get("max_position_embeddings")
    max_length, length_flag = task.max_length(data)
    if positions is not None and max_length > positions:
        raise PrefineError(f"{length_flag} {max_length} exceeds the model's {positions} positions; lower it")
    _check_before_work(task, run, data)

    out = Path(run.out or "runs/compare")
    scoring = comparison_scoring(task, run, data, out)
    seed_values = seed_list(training, seeds)
    starts = [(0, None)] + [(checkpoint.step, checkpoint) for checkpoint in chosen]
    total = len(starts) * len(fractions) * len(seed_values)
    print(
        f"fine-tuning {total} times: from random weights and from {len(chosen)} checkpoints of {run_dir} "
        f"(steps {', '.join(str(checkpoint.step) for checkpoint in chosen)}) at label fractions {', '.join(f'{f:g}' for f in fractions)}, "
        f"{len(seed_values)} seed(s) each; {scoring.line()}"
    )
    rows = []
    done = 0
    for step, checkpoint in starts:
        results = []
        name = ""
        for fraction in fractions:
            label = "scratch" if checkpoint is None else f"step-{step}"
            values = []
            examples = 0
            for seed in seed_values:
                done += 1
                fine_tune_dir = out / f"{label}-{fraction:g}" / f"seed-{seed}"
                shutil.rmtree(fine_tune_dir, ignore_errors=True)
                this_run = dataclasses.replace(
                    _fine_tune_run(run, scoring, fine_tune_dir, checkpoint is None, fraction),
                    init=str(run_dir if checkpoint is None else checkpoint.path),
                )
                start_name = "random weights" if checkpoint is None else f"pre-training step {step}"
                print(f"\n== [{done}/{total}] {start_name}, fraction {fraction:g}, seed {seed}")
                outcome = run_finetune(
                    task, this_run, data, dataclasses.replace(training, seed=seed), explicit_steps, full_report=False, scoring=scoring
                )
                name, value = task.headline(outcome.metrics, outcome.best_metric)
                values.append(value)
                examples = outcome.num_train_examples
            mean, spread = mean_and_spread(values)
            results.append(
                {
                    "fraction": fraction,
                    "examples": examples,
                    "value": mean,
                    "std": spread,
                    "per_seed": values,
                    "run": str(out / f"{label}-{fraction:g}"),
                }
            )
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
                "seeds": seed_values,
                "selected_on": scoring.selection_how,
                "reported_on": scoring.report,
            }
        )
    return report_comparison(rows, format_checkpoint_table(rows), plot_checkpoint_curve, out, "checkpoint_comparison")


def _mlm_accuracy_at_start(run_dir: Path, checkpoint: PretrainCheckpoint | None) -> float | None:
    if checkpoint is not None:
        return checkpoint.mlm_accuracy
    # The pre-training run's evaluation before its first step (--eval-at-start) scores random weights.
    return mlm_accuracy_by_step(run_dir).get(0)


def format_comparison(rows: list[dict]) -> str:
    """The comparison table: each start's mean ± spread over seeds, every per-seed value, the gain and its interval."""
    metric = rows[0]["metric"] if rows else "metric"
    lines = [
        f"| fraction | examples | pretrained {metric} | scratch {metric} | gain | 95% interval | verdict "
        "| per seed (pretrained / scratch) |",
        "|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        interval = "-" if row["gain_low"] is None else f"[{row['gain_low']:+.4f}, {row['gain_high']:+.4f}]"
        per_seed = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(row["pretrained_per_seed"], row["scratch_per_seed"]))
        lines.append(
            f"| {row['fraction']:g} | {row['examples']} | {row['pretrained']:.4f} ± {row['pretrained_std']:.4f} | "
            f"{row['scratch']:.4f} ± {row['scratch_std']:.4f} | {row['gain']:+.4f} | {interval} | {row['verdict']} | {per_seed} |"
        )
    if rows:
        lines.append("")
        lines.append(f"mean ± standard deviation over seeds {', '.join(map(str, rows[0]['seeds']))}; interval: {rows[0]['interval']}")
        lines.append(f"checkpoints chosen on {rows[0]['selected_on']}; scores on {rows[0]['reported_on']}, which chose nothing")
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
    # Error bars: the standard deviation over seeds, the spread a re-run would show.
    axes.errorbar(
        examples,
        [row["pretrained"] for row in rows],
        yerr=[row["pretrained_std"] for row in rows],
        marker="o",
        capsize=3,
        label="from pre-trained weights",
    )
    axes.errorbar(
        examples,
        [row["scratch"] for row in rows],
        yerr=[row["scratch_std"] for row in rows],
        marker="s",
        capsize=3,
        label="from random weights",
    )
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
        run_checkpoint_comparison(task, run, data, training, fractions, explicit_steps, comparison.checkpoints, comparison.seeds)
    else:
        run_comparison(task, run, data, training, fractions, explicit_steps, comparison.seeds)
    return 0
