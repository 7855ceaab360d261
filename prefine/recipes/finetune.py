"""`prefine finetune`: pre-trained weights -> a task model -> the shared loop, for every registered task.

The recipe knows nothing about any one task. It checks the command (flags, output folder,
model length) before any work, asks the task (`prefine.tasks.interface`) to read and encode
the data, builds the task's model with the pre-trained encoder (its head starts fresh, or the
whole model is random with --from-scratch), trains it with the shared loop, then loads the
best checkpoint the way `prefine predict` will and scores it on the eval set. `--resume`
continues an interrupted fine-tuning exactly where it stopped.

Each task's data flags are generated from its data config; a flag that belongs to another
task is rejected rather than silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prefine.checkpoint import TOKENIZER_DIR, is_run_dir, latest_checkpoint, model_checkpoint_of, read_run, write_run
from prefine.config import add_dataclass_arguments, explicit_overrides, from_args, from_dict, option
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.recipes.common import (
    check_resume_overrides,
    recorded_finetune,
    run_record,
    start_finetune,
    with_finetune_learning_rate,
)
from prefine.tasks.interface import Evaluation, FinetuneTask, Predictor, PreparedData, all_tasks, get_task, reject_foreign_flags
from prefine.tasks.selection import DEV_SPLIT_FOLDER, Scoring, carve_dev_split
from prefine.tokenizer import save_tokenizer, tokenizer_fingerprint
from prefine.training import RESUMABLE_OVERRIDES, TrainingConfig, train
from prefine.training.config import resolve_best_metric
from prefine.training.distributed import DistributedContext, barrier


@dataclass
class FinetuneRunConfig:
    task: str = option("classification", "the task to fine-tune for (see the task groups below): classification, qa, ...")
    init: str = option("", "pre-trained weights: a prefine run folder or a Hugging Face BERT folder/name")
    from_scratch: bool = option(False, "use --init's architecture and tokenizer but random weights (the baseline pre-training must beat)")
    train: str = option("", "labelled training data: .tsv, .csv, .jsonl, SQuAD .json or a Hugging Face dataset name (as the task reads)")
    eval: str = option(
        "",
        "labelled selection data (same format as --train): picks the best checkpoint and draws the learning curve; "
        "its score is optimistic, so report --test",
    )
    test: str = option(
        "",
        "labelled test data (same format as --train), scored once at the end with the checkpoint --eval chose: the reported "
        "score; without --eval, a dev split of --train (--dev-fraction) chooses the checkpoint",
    )
    dev_fraction: float = option(
        0.1, "share of --train carved out as the dev split that chooses the checkpoint when --test has no --eval beside it"
    )
    dev_seed: int = option(
        0,
        "seed of that dev split; its own seed, not --seed, so every fine-tuning seed and start of a comparison "
        "chooses on the same examples",
    )
    out: str = option("", "run folder to create")
    resume: str = option("", "continue the interrupted fine-tuning run in this folder exactly where it stopped")
    epochs: float = option(3.0, "passes over the training data, but at least --min-steps steps; sets --max-steps unless that is given")
    min_steps: int = option(
        300,
        "at least this many optimizer steps, however small the training data: 3 epochs of a few hundred examples are a few dozen "
        "updates, far from converged from either start (Zhang et al. 2021 found the same for BERT; benchmarks/README.md); "
        "the best checkpoint by --eval is kept; 1 leaves --epochs alone",
    )
    train_fraction: float = option(1.0, "fine-tune on this random fraction of the training data (seeded)")
    classifier_dropout: float = option(0.1, "dropout before the classifier")
    reinit_layers: int = option(
        0,
        "give the top N encoder blocks (and the pooler) fresh random weights before fine-tuning: blocks a short pre-training "
        "shaped for its own objective can transfer worse than random ones (Zhang et al. 2021, 'Revisiting Few-sample BERT Fine-tuning')",
    )
    dropout: float = option(
        0.1,
        "dropout inside the encoder while fine-tuning (BERT's 0.1), whatever the pre-training used: pre-training on a small "
        "budget runs without dropout, while a few thousand labels need it; -1 keeps the checkpoint's own values",
    )
    eval_batch_size: int = option(64, "examples per evaluation batch")
    registry: str = option("", "run registry database (default: registry.sqlite beside the run folder, or $PREFINE_REGISTRY)")
    name: str = option("", "name of the run in the registry (default: the run folder's name)")

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise PrefineError(f"--epochs {self.epochs} must be positive (passes over the training data)")
        if self.min_steps < 1:
            raise PrefineError(f"--min-steps {self.min_steps} must be at least 1 (1 leaves the step count to --epochs)")
        if not 0.0 < self.dev_fraction < 1.0:
            raise PrefineError(f"--dev-fraction {self.dev_fraction} must be between 0 and 1 (e.g. 0.1)")


FINETUNE_TRAINING_DEFAULTS = TrainingConfig(
    max_steps=1,
    batch_size=32,
    learning_rate=0.0,
    warmup_ratio=0.1,
    eval_every=0,
    eval_at_epoch_end=True,
    save_every=0,
    keep_last=1,
    log_every=10,
    best_metric="",
)


@dataclass
class FinetuneOutcome:
    """What one fine-tuning produced: the reported metrics and what the comparison tables need."""

    run_dir: Path
    metrics: dict[str, float]  # the reported score: on --test when given, else on the selection data
    best_metric: str  # the metric's name, without its direction
    num_train_examples: int
    scoring: Scoring | None = None  # which data chose the checkpoint and which data `metrics` comes from
    selection_metrics: dict[str, float] | None = None  # the chosen checkpoint's score on the selection data


def add_task_data_arguments(parser: argparse.ArgumentParser) -> None:
    """One group of flags per registered task's data config; a field two tasks share becomes one flag."""
    seen: set[str] = set()
    for task in all_tasks():
        fields = {field.name for field in dataclasses.fields(task.data_config)}
        add_dataclass_arguments(parser.add_argument_group(f"{task.name} data (--task {task.name})"), task.data_config, skip=tuple(seen))
        seen |= fields


def task_data_from_args(task: FinetuneTask, args: argparse.Namespace) -> Any:
    reject_foreign_flags(args, task.data_config, [other.data_config for other in all_tasks()], f"--task {task.name}")
    return from_args(task.data_config, args)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a pre-trained encoder for a task: classification, regression, extractive QA, ..."
    )
    add_dataclass_arguments(parser.add_argument_group("run"), FinetuneRunConfig)
    add_task_data_arguments(parser)
    add_dataclass_arguments(parser.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS)
    parser.set_defaults(func=finetune_from_args)


def _epoch_steps(run: FinetuneRunConfig, training: TrainingConfig, num_items: int) -> int:
    return max(math.ceil(run.epochs * num_items / training.batch_size), 1)


def _steps_for(run: FinetuneRunConfig, training: TrainingConfig, num_items: int) -> int:
    return max(_epoch_steps(run, training, num_items), run.min_steps)


def run_finetune(
    task: FinetuneTask,
    run: FinetuneRunConfig,
    data: Any,
    training: TrainingConfig,
    explicit_steps: bool,
    resume: bool = False,
    full_report: bool = True,
    scoring: Scoring | None = None,
) -> FinetuneOutcome:
    """Fine-tune `run.init`'s weights for `task` into `run.out` (or continue `run.out` with `resume`).

    The checkpoint is chosen on the selection data and the reported score is --test's, scored
    once at the end (see `prefine.tasks.selection`); `scoring` overrides which data does what
    (a comparison carves its dev split once for all its fine-tunes). `full_report=False`
    (comparisons) prints one line of the chosen checkpoint's metrics instead of the task's full
    table; the full report is in the run folder either way.
    """
    max_length, length_flag = task.max_length(data)
    run_dir, context, init = start_finetune(run, training.device, max_length, length_flag, task.train_hint, resume=resume)
    task.check_encoder(init.config)
    training = with_finetune_learning_rate(training, init.config)
    tokenizer = init.tokenizer

    if scoring is None:
        scoring = scoring_for(task, run, data, run_dir, context)
    train_source = scoring.dev_split["train"] if scoring.dev_split else run.train
    prepared = task.prepare(train_source, scoring.selection, data, tokenizer, run.train_fraction, training.seed)
    if not explicit_steps:
        training = dataclasses.replace(training, max_steps=_steps_for(run, training, prepared.num_train_items))
    if not training.best_metric and prepared.has_eval:
        training = dataclasses.replace(training, best_metric=task.default_best_metric(prepared))
    training = dataclasses.replace(training, best_metric=resolve_best_metric(training.best_metric, task.metric_directions))

    torch.manual_seed(training.seed)
    model = task.build_model(init.config, prepared.head, run)
    task.load_initial_weights(model, init, run.from_scratch, announce=context.is_main and not resume, reinit_layers=run.reinit_layers)

    if context.is_main and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tokenizer, run_dir / TOKENIZER_DIR, model_max_length=max_length)
    fingerprint = tokenizer_fingerprint(tokenizer)
    checkpoint_config = {
        **dataclasses.asdict(init.config),
        "model_type": "bert",
        "architectures": [task.architecture],
        # A checkpoint folder copied out of its run still says which task reads it (export dispatches on it).
        "task": task.name,
        "tokenizer_fingerprint": fingerprint,
        "classifier_dropout": run.classifier_dropout,
        **prepared.head,
    }
    epochs_run = training.max_steps * training.batch_size / max(prepared.num_train_items, 1)
    record = run_record(
        "finetune",
        task=task.name,
        run=run,
        data=data,
        training=training,
        **prepared.record,
        model=init.config,
        init=init.description,
        num_train_examples=prepared.num_train_examples,
        # What actually runs: --max-steps, or --min-steps on a small training set, can override --epochs.
        effective_epochs=round(epochs_run, 3),
        scoring=scoring.to_json(),
    )
    if context.is_main:
        write_run(run_dir, record)
        verb = "resuming fine-tuning" if resume else "fine-tuning"
        # Say why the step count is not what --epochs alone gives, so 300 steps for 3 epochs is no surprise.
        raised = (
            ""
            if explicit_steps or training.max_steps <= _epoch_steps(run, training, prepared.num_train_items)
            else (f" ({epochs_run:.3g} epochs: at least --min-steps {run.min_steps})")
        )
        print(
            f"{verb} ({task.name}) on {prepared.summary}; {training.max_steps} steps of {training.batch_size}{raised} "
            f"at learning rate {training.learning_rate:g}"
        )
        print(scoring.line())
    pad_id = tokenizer.token_to_id("[PAD]")
    micro_batch = training.batch_size // training.gradient_accumulation_steps
    training_task = task.training_task(prepared, micro_batch, pad_id, training.seed, run.eval_batch_size, context.device)
    best_name = training.best_metric.split(":")[0]
    # A run killed before its first checkpoint resumes from step 0: same seed, same weights, same row.
    from_checkpoint = resume and latest_checkpoint(run_dir) is not None
    if resume and not from_checkpoint and context.is_main:
        print(f"resume: {run_dir} has no checkpoint yet; training it from step 0")
    with recorded_finetune(run, run_dir, init, record, fingerprint, context.is_main, resume=resume) as handle:
        result = train(
            model, training_task, training, run_dir, checkpoint_config, context, resume=from_checkpoint, on_progress=handle.heartbeat
        )
        if not prepared.has_eval or not context.is_main:
            return FinetuneOutcome(run_dir, result.last_eval, best_name, prepared.num_train_examples, scoring)
        selection, report = _score_best_checkpoint(task, run, prepared, scoring, run_dir, context.device, best_name, full_report)
        if report is None:
            handle.set_metrics(selection.metrics, (f"eval/{best_name}", float(selection.metrics[best_name])))
        else:
            registry_metrics = {**report.metrics, **{f"selection/{key}": value for key, value in selection.metrics.items()}}
            handle.set_metrics(registry_metrics, (f"test/{best_name}", float(report.metrics[best_name])))
    reported = report.metrics if report is not None else selection.metrics
    return FinetuneOutcome(run_dir, reported, best_name, prepared.num_train_examples, scoring, selection.metrics)


def _score_best_checkpoint(
    task: FinetuneTask,
    run: FinetuneRunConfig,
    prepared: PreparedData,
    scoring: Scoring,
    run_dir: Path,
    device: torch.device,
    best_name: str,
    full_report: bool,
) -> tuple[Evaluation, Evaluation | None]:
    """Score the checkpoint the run hands on (the best by --best-metric), loaded exactly as predict loads it, and print it.

    Returns its evaluation on the selection data and on --test (scored once, the reported score; None without --test).
    """

    predictor = load_run(run_dir, device)
    assert isinstance(predictor, Predictor)  # a fine-tuning run loads as its task's predictor
    selection = task.final_evaluation(predictor, prepared, run.eval_batch_size)
    _write_outputs(run_dir, selection.outputs, prefix="")
    report = predictor.evaluate_source(scoring.report, run.eval_batch_size) if scoring.report else None
    if report is not None:
        _write_outputs(run_dir, report.outputs, prefix=TEST_OUTPUT_PREFIX)
    checkpoint = model_checkpoint_of(run_dir).name
    if not full_report:
        shown = report if report is not None else selection
        where = "test" if report is not None else "selection data"
        scores = "  ".join(f"{key} {value:.4g}" for key, value in shown.metrics.items())
        print(f"best checkpoint {checkpoint} (by {best_name} on the selection data); {where}: {scores}")
        return selection, report
    print(f"best checkpoint ({best_name}, chosen on {scoring.selection_how}): {checkpoint}")
    if report is None:
        print(f"score on the data that chose it (optimistic; pass --test FILE for a score nothing was chosen on):\n{selection.table}")
    else:
        print(f"on the selection data (chose the checkpoint):\n{selection.table}")
        print(f"on {scoring.report} (the reported score: scored once, chose nothing):\n{report.table}")
    written = [*selection.outputs, *(TEST_OUTPUT_PREFIX + name for name in (report.outputs if report else {}))]
    if written:
        print(f"wrote {', '.join(str(run_dir / name) for name in written)}")
    return selection, report


# Files a task writes for the --test evaluation sit beside the selection ones under this prefix.
TEST_OUTPUT_PREFIX = "test_"


def _write_outputs(run_dir: Path, outputs: dict[str, Any], prefix: str) -> None:
    for name, payload in outputs.items():
        (run_dir / f"{prefix}{name}").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_data_before_work(task: FinetuneTask, run: FinetuneRunConfig, data: Any) -> None:
    """Read --train, --eval and --test as fine-tuning will, so a wrong path, column or label fails before any weights load."""
    if not run.train:
        return  # start_finetune names the missing flag
    held_out_sources: list[str | None] = [source for source in (run.eval, run.test) if source]
    for held_out in held_out_sources or [None]:
        task.check_inputs(run.train, held_out, data)


def scoring_for(task: FinetuneTask, run: FinetuneRunConfig, data: Any, run_dir: Path, context: DistributedContext) -> Scoring:
    """Which data chooses the checkpoint and which data reports, from --eval and --test (see `prefine.tasks.selection`).

    --test without --eval carves the dev split into the run folder; the split is seeded, so a
    resumed run carves the very same one again.
    """
    if run.eval:
        return Scoring(selection=run.eval, selection_how=f"--eval {run.eval}", report=run.test or None)
    if not run.test:
        return Scoring(selection=None, selection_how="", report=None)
    folder = run_dir / DEV_SPLIT_FOLDER
    if context.is_main:
        carved = carve_dev_split(task, run.train, data, run.dev_fraction, run.dev_seed, folder)
    barrier(context)
    if not context.is_main:  # the same seeded split rank 0 wrote; only the paths are needed here
        carved = Scoring(str(folder / "dev.jsonl"), "a dev split of --train", None, {"train": str(folder / "train.jsonl")})
    carved.report = run.test
    return carved


def _resumed(args: argparse.Namespace) -> tuple[FinetuneTask, FinetuneRunConfig, Any, TrainingConfig]:
    """The interrupted run's own settings; only flags that do not change what a step computes may differ."""
    run_dir = Path(args.resume)
    saved = read_run(run_dir)
    if saved.get("kind") != "finetune":
        raise PrefineError(f"{run_dir} is a {saved.get('kind')} run, not a fine-tuning run; resume it with its own command")
    task = get_task(saved["task"])
    saved_run = from_dict(FinetuneRunConfig, saved["run"], str(run_dir / "run.json"))
    requested_run = explicit_overrides(args, FinetuneRunConfig)
    requested_run.pop("resume")
    check_resume_overrides(dataclasses.asdict(saved_run), requested_run, frozenset({"registry", "out", "eval_batch_size"}), "the run")
    for other in all_tasks():
        check_resume_overrides(saved["data"], explicit_overrides(args, other.data_config), frozenset(), "the data")
    check_resume_overrides(saved["training"], explicit_overrides(args, TrainingConfig), RESUMABLE_OVERRIDES, "the training")
    training = dataclasses.replace(
        from_dict(TrainingConfig, saved["training"], "training"),
        **{key: value for key, value in explicit_overrides(args, TrainingConfig).items() if key in RESUMABLE_OVERRIDES},
    )
    run = dataclasses.replace(saved_run, resume=str(run_dir), out=str(run_dir), **{k: v for k, v in requested_run.items() if k != "out"})
    return task, run, from_dict(task.data_config, saved["data"], "data"), training


def finetune_from_args(args: argparse.Namespace) -> int:
    if args.resume:
        task, run, data, training = _resumed(args)
        run_finetune(task, run, data, training, explicit_steps=True, resume=True)
        return 0
    run = from_args(FinetuneRunConfig, args)
    task = get_task(run.task)
    run = dataclasses.replace(run, task=task.name)
    data = task_data_from_args(task, args)
    training = from_args(TrainingConfig, args, base=FINETUNE_TRAINING_DEFAULTS)
    if is_run_dir(Path(run.out or ".")) and run.out:
        raise PrefineError(f"{run.out} already holds a run; continue it with --resume {run.out} or choose another --out")
    check_data_before_work(task, run, data)
    run_finetune(task, run, data, training, explicit_steps=args.max_steps is not None)
    return 0
