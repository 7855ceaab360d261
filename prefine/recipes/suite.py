"""`prefine suite glue|klue`: a pre-trained model on a benchmark suite in one command, from the official files.

Every task of the suite (`prefine.recipes.suites`, a table per suite) is fine-tuned with the
`prefine finetune` recipe, the same way for every task and the same way `prefine compare` does it:

- the checkpoint is chosen on a dev split carved once out of the task's training file (seeded,
  stratified; `prefine.tasks.selection`), shared by every seed and start;
- the official dev file (the number papers report, since test labels are hidden) is scored once,
  with the chosen checkpoint, and chose nothing;
- `--seeds K` fine-tunes per start (the model, and the `--baseline`: random weights of the same
  shape, another run, or a Hugging Face model), seed i of both starts sharing data order and head
  initialisation, so the gain gets the paired 95% t-interval of `prefine.metrics.intervals`.

Everything is checked before the first fine-tune: the suite and task names, each file in the
official layout, each file read as its task reads it (a file of another task fails here, naming
the file), the --init and --baseline models. A long suite behaves: one progress line per
fine-tune with the ETA of the whole suite, a state file in --out after every fine-tune so that
`--resume OUT` redoes nothing finished, `--max-time` shared across the remaining fine-tunes in
proportion to their planned steps, and every fine-tune registered as a child of the --init run.
At the end: a table like the papers', a results file, a final JSON line and a bar plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefine.checkpoint import is_run_dir, write_text_atomic
from prefine.config import add_dataclass_arguments, explicit_overrides, from_args, from_dict, option
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.metrics.intervals import mean_and_spread, paired_gain
from prefine.model import BertConfig
from prefine.recipes.common import InitSource, check_resume_overrides, finetune_learning_rate, resolve_init
from prefine.recipes.compare import INTERVAL_METHOD, comparison_scoring, seed_list
from prefine.recipes.finetune import FINETUNE_TRAINING_DEFAULTS, FinetuneRunConfig, run_finetune
from prefine.recipes.suites import SUITES, Suite, SuiteTask
from prefine.registry import default_registry_path
from prefine.tasks.interface import FinetuneTask, Predictor, get_task, task_names
from prefine.tasks.selection import Scoring
from prefine.training import TrainingConfig, TrainingInterrupted, resolve_device
from prefine.training.config import format_duration, parse_duration

STATE_FILE = "suite-state.json"
RESULTS_FILE = "suite-results.json"
PLOT_FILE = "suite.png"
# The width the suites' baseline scripts fine-tune at (BERT-base); their rates are scaled from it.
BASE_WIDTH_RATE = 5e-5


@dataclass
class SuiteConfig:
    suite: str = option("", "the suite: glue or klue", positional=True)
    init: str = option("", "the pre-trained model to evaluate: a prefine run folder or a Hugging Face BERT folder/name")
    data: str = option(
        "",
        "folder of the suite's official files: GLUE as download_glue_data.py writes it (CoLA/train.tsv, MNLI/dev_matched.tsv, ...), "
        "KLUE v1.1 as klue_benchmark/ of the KLUE repository (ynat-v1.1/ynat-v1.1_train.json, ...); without it the tasks are read "
        "from the Hugging Face Hub (nyu-mll/glue, klue) where prefine's readers take them (needs the datasets extra)",
    )
    out: str = option("", "folder for the suite: one sub-folder per task, the state file, the results and the plot")
    tasks: str = option("", "comma-separated tasks to run, e.g. cola,sst2 (default: every task whose files --data holds)")
    seeds: int = option(
        3,
        "fine-tunes per task and start (seeds --seed, --seed+1, ...); 3 is the fewest that gives the paired gain a 95 percent "
        "interval with some width to read (t = 4.30), and seed spread on small tasks (RTE, MRPC, CoLA) is several points",
    )
    baseline: str = option(
        "scratch",
        "what the model is compared with: scratch (random weights of --init's shape and tokenizer), a prefine run, a Hugging Face "
        "model, or none",
        metavar="scratch|RUN|HF_MODEL|none",
    )
    max_time: str = option(
        "",
        "wall-clock budget of the whole suite (e.g. 2h): each fine-tune trains for the time left, less what the fine-tunes "
        "still to run are expected to spend reading and evaluating (measured on the finished ones), times its share of the "
        "planned optimizer steps still to run; a task with more training data gets more time, and time a fine-tune leaves "
        "unused goes to the rest",
    )
    resume: str = option(
        "",
        "continue the suite in this --out folder: finished fine-tunes (task, start, seed) are kept, an unfinished one continues "
        "from its last checkpoint",
    )

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise PrefineError(f"--seeds {self.seeds} must be at least 1 (3 or more give the gain an interval worth reading)")
        if self.max_time:
            parse_duration(self.max_time, "--max-time")


# Flags of `prefine finetune` that a suite does not take: the table and the suite decide them.
_RUN_FLAGS_SKIPPED = ("task", "init", "from_scratch", "train", "eval", "test", "out", "resume", "train_fraction", "name")
# What a resumed suite may change: how long and how visibly it runs, not what a fine-tune computes.
_RESUMABLE_SUITE = frozenset({"max_time", "resume", "suite"})
_RESUMABLE_TRAINING = frozenset({"num_threads", "progress", "device"})


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "suite",
        help="fine-tune and score a pre-trained model on every task of GLUE or KLUE, against a baseline, with seeds",
        description="Fine-tune --init on each task of the suite from its official files, --seeds times, beside the --baseline, "
        "and print a table like the papers' with the gain and its 95% interval. Each checkpoint is chosen on a dev split carved "
        "out of the task's training file; the official dev file is scored once and chooses nothing. Flags of the run and "
        "training groups apply to every task and override the suite's per-task settings.",
    )
    add_dataclass_arguments(parser.add_argument_group("suite"), SuiteConfig)
    add_dataclass_arguments(parser.add_argument_group("run"), FinetuneRunConfig, skip=_RUN_FLAGS_SKIPPED)
    add_dataclass_arguments(
        parser.add_argument_group("training"), TrainingConfig, defaults=FINETUNE_TRAINING_DEFAULTS, skip=("max_time",), show_defaults=False
    )
    parser.set_defaults(func=suite_from_args)


# ---------------------------------------------------------------------------------------------
# Planning: every check before the first fine-tune


@dataclass
class PlannedTask:
    """A suite task that will run: its files, its task and data config, its scoring and its fine-tuning settings."""

    entry: SuiteTask
    task: FinetuneTask
    data: Any
    train: str
    reports: list[tuple[str, str]]  # (split label, file or dataset name), the first is --test
    run: FinetuneRunConfig
    training: TrainingConfig
    baseline_learning_rate: float  # the rate for a --baseline model of another width
    scoring: Scoring | None = None
    planned_steps: int = 0  # of one fine-tune, for sharing --max-time and the ETA


@dataclass
class SuitePlan:
    suite: Suite
    config: SuiteConfig
    out: Path
    tasks: list[PlannedTask]
    skipped: dict[str, str]  # task -> why it does not run
    seeds: list[int]
    starts: list[str]  # "model", and "baseline" unless --baseline none
    registry: str
    explicit_steps: bool


def find_suite(name: str) -> Suite:
    if name not in SUITES:
        raise PrefineError(f"unknown suite '{name}'; choose one of {', '.join(SUITES)} (prefine suite glue --data glue_data ...)")
    return SUITES[name]


def _chosen_tasks(suite: Suite, tasks: str) -> list[SuiteTask] | None:
    """The --tasks entries in the suite's order, or None when --tasks is not given."""
    if not tasks.strip():
        return None
    names = [name.strip().lower() for name in tasks.split(",") if name.strip()]
    known = {entry.name: entry for entry in suite.tasks}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise PrefineError(f"--tasks: {suite.name} has no task {', '.join(unknown)}; its tasks are {', '.join(known)}")
    return [entry for entry in suite.tasks if entry.name in names]


def _find_file(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / relative for relative in candidates if (root / relative).is_file()), None)


def _why_not_runnable(entry: SuiteTask) -> str:
    """Why prefine cannot run this task as the table describes it ("" when it can)."""
    if entry.unsupported:
        return entry.unsupported
    if entry.task not in task_names():
        return f"it needs the {entry.task} task, which this prefine does not have"
    task = get_task(entry.task)
    fields = {field.name for field in dataclasses.fields(task.data_config)}
    missing_flags = [name for name in {**entry.data, **entry.hub_data} if name not in fields]
    if missing_flags:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing_flags)
        return f"the {entry.task} task of this prefine has no {flags}, which its official files need"
    if type(task).split_dev is FinetuneTask.split_dev:
        return f"the {entry.task} task of this prefine cannot carve a dev split out of its training file to choose checkpoints on"
    missing_metrics = [
        key for key in (*(metric.key for metric in entry.metrics), entry.select_on) if key and key not in task.metric_directions
    ]
    if missing_metrics:
        return f"the {entry.task} task of this prefine does not compute {', '.join(dict.fromkeys(missing_metrics))}"
    return ""


def _sources(entry: SuiteTask, data: str) -> tuple[str, list[tuple[str, str]]] | str:
    """The training source and the report sources (label, source), or why they are not there."""
    if not data:
        if not entry.hub:
            return "prefine reads its Hugging Face copy differently from the official files; pass --data with the official files"
        return f"{entry.hub}:train", [(split.label, f"{entry.hub}:{split.hub_split}") for split in entry.reports]
    root = Path(data)
    wanted = [("train", entry.train), *((split.label, split.paths) for split in entry.reports)]
    found = {label: _find_file(root, paths) for label, paths in wanted}
    missing = [str(root / paths[0]) for label, paths in wanted if found[label] is None]
    if missing:
        return f"{', '.join(missing)} not found"
    return str(found["train"]), [(label, str(found[label])) for label, _ in wanted[1:]]


def _scaled_learning_rate(entry: SuiteTask, model: BertConfig) -> float:
    """The suite script's rate for BERT-base, moved to this model's width by `prefine finetune`'s width rule."""
    return float(f"{entry.learning_rate / BASE_WIDTH_RATE * finetune_learning_rate(model):.2g}")


def _planned_steps(run: FinetuneRunConfig, training: TrainingConfig, examples: int, explicit_steps: bool) -> int:
    if explicit_steps:
        return training.max_steps
    return max(math.ceil(run.epochs * examples / training.batch_size), run.min_steps, 1)


def _check_files(planned: PlannedTask, suite: Suite) -> None:
    """Read every file as the task will; a file of another task (columns not found) fails here, naming the file."""
    for _, report in planned.reports:
        try:
            planned.task.check_inputs(planned.train, report, planned.data)
        except PrefineError as error:
            raise PrefineError(
                f"{suite.title} {planned.entry.title} cannot be read from its files ({error}); point --data at {suite.layout}"
            ) from None


def _default_registry(run_registry: str, init: InitSource, out: Path) -> str:
    """The registry the --init run is in, so `prefine lineage` shows the suite's fine-tunes under it."""
    if run_registry:
        return run_registry
    return str(default_registry_path(init.run_dir if init.run_dir is not None else out / "suite"))


def plan_suite(
    config: SuiteConfig, run: FinetuneRunConfig, training_overrides: dict[str, Any], run_overrides: dict[str, Any], explicit_steps: bool
) -> SuitePlan:
    """Check everything a suite needs, before any work; returns what will run and what is skipped (and why)."""
    suite = find_suite(config.suite)
    chosen = _chosen_tasks(suite, config.tasks)
    if not config.init:
        raise PrefineError("pass --init with the pre-trained run (or Hugging Face model) to evaluate")
    if not config.out:
        raise PrefineError("pass --out FOLDER for the suite's runs and results")
    if config.data and not Path(config.data).is_dir():
        raise PrefineError(f"--data {config.data} is not a folder; point it at {suite.layout}")
    out = Path(config.out)
    if not config.resume and (out / STATE_FILE).exists():
        raise PrefineError(f"{out} already holds a suite; continue it with --resume {out} or choose another --out")
    if is_run_dir(out):
        raise PrefineError(f"{out} is a run folder; give the suite a folder of its own with --out")
    init = resolve_init(config.init)
    # A wrong baseline path or name fails now, not after the first task.
    baseline_config = resolve_init(config.baseline).config if config.baseline not in ("scratch", "none") else None
    where = config.data or "the Hugging Face Hub"
    skipped: dict[str, str] = {}
    planned: list[PlannedTask] = []
    for entry in chosen or list(suite.tasks):
        reason = _why_not_runnable(entry)
        sources = _sources(entry, config.data) if not reason else reason
        if isinstance(sources, str):
            if chosen is not None:
                fix = f"; point --data at {suite.layout}" if config.data and not reason else ""
                raise PrefineError(f"--tasks {entry.name}: {sources}{fix}")
            # A folder that simply lacks a task is said briefly; every other reason in full.
            skipped[entry.name] = f"not in {where}" if config.data and not reason else sources
            continue
        task = get_task(entry.task)
        try:
            data = _data_config(task, {**entry.data, **(entry.hub_data if not config.data else {})}, init.config)
        except PrefineError as error:
            # A model with few positions (a toy) can be too short for a task's inputs (MRC's 64-token questions).
            why = f"the model's {init.config.max_position_embeddings} positions are too few for its inputs ({error})"
            if chosen is not None:
                raise PrefineError(f"--tasks {entry.name}: {why}") from None
            skipped[entry.name] = why
            continue
        task_run = dataclasses.replace(run, task=task.name, init=config.init, epochs=run_overrides.get("epochs", entry.epochs))
        per_task: dict[str, Any] = {"batch_size": entry.batch_size, "learning_rate": _scaled_learning_rate(entry, init.config)}
        if entry.select_on:
            per_task["best_metric"] = entry.select_on
        task_training = dataclasses.replace(FINETUNE_TRAINING_DEFAULTS, **{**per_task, **training_overrides})
        # A baseline of another width fine-tunes at the rate for its own width, as `prefine finetune` would give it.
        baseline_rate = task_training.learning_rate
        if baseline_config is not None and "learning_rate" not in training_overrides:
            baseline_rate = _scaled_learning_rate(entry, baseline_config)
        train, reports = sources
        planned.append(PlannedTask(entry, task, data, train, reports, task_run, task_training, baseline_rate))
    if not planned:
        raise PrefineError(
            f"no {suite.title} task can run from {where} ({'; '.join(f'{name}: {why}' for name, why in skipped.items())}); "
            f"point --data at {suite.layout}"
        )
    if not config.data:
        from prefine.corpus.datasets_source import import_datasets  # only when the Hub copy is read: `datasets` is slow to import

        import_datasets()
    for task_plan in planned:
        _check_files(task_plan, suite)
    starts = ["model"] if config.baseline == "none" else ["model", "baseline"]
    registry = _default_registry(run.registry, init, out)
    return SuitePlan(suite, config, out, planned, skipped, seed_list(planned[0].training, config.seeds), starts, registry, explicit_steps)


def _data_config(task: FinetuneTask, fields: dict[str, Any], model: BertConfig) -> Any:
    """The task's data config for the official files, its length capped at the model's positions (a tiny model may have fewer)."""
    values = {key: value for key, value in fields.items() if value is not None}
    data: Any = from_dict(task.data_config, values)
    length, flag = task.max_length(data)
    if length > model.max_position_embeddings:
        data = from_dict(task.data_config, {**values, flag.removeprefix("--").replace("-", "_"): model.max_position_embeddings})
    return data


def carve_selection_splits(plan: SuitePlan) -> None:
    """The dev split each task chooses its checkpoints on, carved once out of its training file (seeded, so a resume carves the same)."""
    for task_plan in plan.tasks:
        run = dataclasses.replace(task_plan.run, train=task_plan.train, test=task_plan.reports[0][1], eval="")
        try:
            task_plan.scoring = comparison_scoring(task_plan.task, run, task_plan.data, plan.out / task_plan.entry.name)
        except PrefineError as error:
            raise PrefineError(f"{plan.suite.title} {task_plan.entry.title}: {error}") from None
        examples = int(task_plan.scoring.dev_split["num_train"]) if task_plan.scoring.dev_split else 0
        task_plan.planned_steps = _planned_steps(task_plan.run, task_plan.training, examples, plan.explicit_steps)


# ---------------------------------------------------------------------------------------------
# State: what is finished, so a resumed suite redoes nothing


def _key(task: str, start: str, seed: int) -> str:
    return f"{task}/{start}/seed-{seed}"


def read_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if not path.is_file():
        raise PrefineError(f"{out} holds no suite to resume (no {STATE_FILE}); pass the --out folder of an earlier prefine suite")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PrefineError(f"{path} is not valid JSON ({error.msg}); it was not written by prefine suite, or was edited") from None
    if not isinstance(state, dict) or "config" not in state or "done" not in state:
        raise PrefineError(f"{path} is not a prefine suite state file; pass the --out folder of an earlier prefine suite")
    return state


def write_state(out: Path, state: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / STATE_FILE, json.dumps(state, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Running


def _start_run(
    plan: SuitePlan, task_plan: PlannedTask, start: str, seed: int, budget: float | None
) -> tuple[FinetuneRunConfig, TrainingConfig]:
    scoring = task_plan.scoring
    assert scoring is not None and scoring.dev_split is not None  # carved before any fine-tune
    run_dir = plan.out / task_plan.entry.name / start / f"seed-{seed}"
    baseline = plan.config.baseline
    run = dataclasses.replace(
        task_plan.run,
        out=str(run_dir),
        name=f"{plan.out.name}-{task_plan.entry.name}-{start}-seed-{seed}",
        init=plan.config.init if start == "model" or baseline == "scratch" else baseline,
        from_scratch=start == "baseline" and baseline == "scratch",
        train=scoring.dev_split["train"],
        eval=scoring.selection or "",
        test=scoring.report or "",
        registry=plan.registry,
    )
    rate = task_plan.baseline_learning_rate if start == "baseline" else task_plan.training.learning_rate
    training = dataclasses.replace(
        task_plan.training, seed=seed, learning_rate=rate, max_time="" if budget is None else f"{max(budget, 1.0):.0f}"
    )
    return run, training


def _scores(
    outcome_metrics: dict[str, float], run_dir: Path, task_plan: PlannedTask, device: str, batch_size: int
) -> dict[str, dict[str, float]]:
    """The reported metrics per official split: the first from the fine-tune, the others scored with the same checkpoint."""
    scores = {task_plan.reports[0][0]: {key: float(value) for key, value in outcome_metrics.items()}}
    if len(task_plan.reports) > 1:
        predictor = load_run(run_dir, resolve_device(device))
        assert isinstance(predictor, Predictor)  # a fine-tuning run loads as its task's predictor
        for label, source in task_plan.reports[1:]:
            evaluation = predictor.evaluate_source(source, batch_size)
            scores[label] = {key: float(value) for key, value in evaluation.metrics.items()}
            (run_dir / f"test_{label}_eval_metrics.json").write_text(json.dumps(scores[label], indent=2) + "\n", encoding="utf-8")
    return scores


def fine_tune_budget(remaining: float, weight: float, pending_weights: list[float], expected_overheads: list[float]) -> float | None:
    """The training budget of the next fine-tune, or None when the suite's time has run out.

    The time left, less what the pending fine-tunes are expected to spend outside training
    (reading, tokenizing, evaluating: `expected_overheads`, one per pending fine-tune), is shared
    in proportion to planned optimizer steps (`weight` of `pending_weights`). Without setting the
    overheads aside, the last fine-tunes of a suite whose evaluation is slow would be left a few
    seconds of training and reported as if they were results.
    """
    trainable = remaining - sum(expected_overheads)
    if trainable <= 1.0:
        return None
    return trainable * weight / max(sum(pending_weights), 1)


def _expected_overhead(done: dict[str, Any], task: str) -> float:
    """Mean time outside training of the finished fine-tunes of `task` (of any task before one finished; 0 before any)."""
    mine = [entry["overhead"] for key, entry in done.items() if "overhead" in entry and key.startswith(f"{task}/")]
    every = [entry["overhead"] for entry in done.values() if "overhead" in entry]
    samples = mine or every
    return sum(samples) / len(samples) if samples else 0.0


def run_suite(plan: SuitePlan, state: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune every planned task, seed and start not yet done; then report."""
    jobs = [(task_plan, seed, start) for task_plan in plan.tasks for seed in plan.seeds for start in plan.starts]
    done: dict[str, Any] = state["done"]
    budget = parse_duration(plan.config.max_time) if plan.config.max_time else None
    session_start = time.monotonic()
    used_before = float(state.get("seconds", 0.0))
    weights = {id(job): job[0].planned_steps for job in jobs}
    print(
        f"{plan.suite.title}: {len(plan.tasks)} task(s), {len(plan.seeds)} seed(s) ({', '.join(map(str, plan.seeds))}), "
        f"{' and '.join(_start_name(plan, start) for start in plan.starts)}; {len(done)} of {len(jobs)} fine-tunes already done"
        + (
            f"; --max-time {format_duration(budget)} for the whole suite, {format_duration(max(budget - used_before, 0))} left"
            if budget
            else ""
        )
    )
    print(
        "each checkpoint is chosen on a dev split carved out of the task's training file; the official dev file is scored once "
        "with it and chooses nothing"
    )
    stopped = ""
    for index, (task_plan, seed, start) in enumerate(jobs):
        key = _key(task_plan.entry.name, start, seed)
        if key in done:
            continue
        used = used_before + time.monotonic() - session_start
        this_budget = None
        if budget is not None:
            pending = [job for job in jobs if _key(job[0].entry.name, job[2], job[1]) not in done]
            this_budget = fine_tune_budget(
                budget - used,
                weights[id(jobs[index])],
                [weights[id(job)] for job in pending],
                [_expected_overhead(done, job[0].entry.name) for job in pending],
            )
            if this_budget is None:
                stopped = f"the --max-time budget ({format_duration(budget)}) ran out before {key}"
                break
        run, training = _start_run(plan, task_plan, start, seed, this_budget)
        run_dir = Path(run.out)
        # An unfinished fine-tune of an interrupted suite continues from its last checkpoint (`prefine finetune --resume`);
        # a folder the interruption left without a run record starts over.
        resume = is_run_dir(run_dir)
        if not resume:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(
            f"\n== {task_plan.entry.title} ({task_plan.entry.name}), {_start_name(plan, start)}, seed {seed}"
            + (" (continuing the interrupted fine-tune)" if resume else "")
        )
        began = time.monotonic()
        try:
            outcome = run_finetune(
                task_plan.task,
                run,
                task_plan.data,
                training,
                plan.explicit_steps,
                resume=resume,
                full_report=False,
                scoring=task_plan.scoring,
            )
        except TrainingInterrupted as interrupt:
            # The fine-tune's checkpoint is saved; what continues it is the suite's --resume, not the fine-tune's own.
            print(f"prefine: suite interrupted; continue with: prefine suite {plan.suite.name} --resume {plan.out}", file=sys.stderr)
            raise TrainingInterrupted(interrupt.step, None) from None
        scores = _scores(outcome.metrics, run_dir, task_plan, training.device, run.eval_batch_size)
        seconds = time.monotonic() - began
        done[key] = {"scores": scores, "run": str(run_dir), "seconds": round(seconds, 3), "train_examples": outcome.num_train_examples}
        if this_budget is not None:
            # What the fine-tune spent beyond its training budget: reading, tokenizing, evaluating, scoring.
            done[key]["overhead"] = round(max(seconds - this_budget, 0.0), 3)
        state["seconds"] = round(used_before + time.monotonic() - session_start, 3)
        write_state(plan.out, state)
        print(_progress_line(plan, jobs, done, task_plan, start, seed, scores, seconds, state["seconds"], budget))
    state["seconds"] = round(used_before + time.monotonic() - session_start, 3)
    write_state(plan.out, state)
    if stopped:
        print(
            f"\n{stopped}; continue with: prefine suite {plan.suite.name} --resume {plan.out} --max-time LONGER "
            "(the whole suite's budget, the time spent so far included)"
        )
    return report_suite(plan, done, stopped)


def _start_name(plan: SuitePlan, start: str) -> str:
    if start == "model":
        return f"from {plan.config.init}"
    return "from random weights" if plan.config.baseline == "scratch" else f"baseline {plan.config.baseline}"


def _progress_line(
    plan: SuitePlan,
    jobs: list,
    done: dict[str, Any],
    task_plan: PlannedTask,
    start: str,
    seed: int,
    scores: dict[str, dict[str, float]],
    seconds: float,
    used: float,
    budget: float | None,
) -> str:
    """One line per fine-tune: where the suite is, this fine-tune's official metrics, and the ETA of the whole suite."""
    finished = [job for job in jobs if _key(job[0].entry.name, job[2], job[1]) in done]
    pending = [job for job in jobs if _key(job[0].entry.name, job[2], job[1]) not in done]
    done_steps = sum(job[0].planned_steps for job in finished)
    left_steps = sum(job[0].planned_steps for job in pending)
    # Seconds per planned step so far, over what this suite has run; a time budget caps it.
    eta = used / max(done_steps, 1) * left_steps
    if budget is not None:
        eta = min(eta, max(budget - used, 0.0))
    metrics = ", ".join(
        f"{metric.label} {_value(scores, task_plan, metric.key, metric.split) * 100:.1f}" for metric in task_plan.entry.metrics
    )
    return (
        f"[{len(finished)}/{len(jobs)}] {task_plan.entry.name} {start} seed {seed}: {metrics} ({format_duration(seconds)}); "
        f"suite ETA {format_duration(eta)}"
    )


def _value(scores: dict[str, dict[str, float]], task_plan: PlannedTask, key: str, split: str) -> float:
    label = split or task_plan.reports[0][0]
    values = scores.get(label, {})
    if key not in values:
        raise PrefineError(
            f"{task_plan.entry.title}'s {label} score has no {key} (it has {', '.join(values) or 'nothing'}); "
            f"the {task_plan.task.name} task and the suite table disagree: report this as a bug"
        )
    return values[key]


# ---------------------------------------------------------------------------------------------
# Reporting


def _summary(model: list[float], baseline: list[float] | None) -> dict[str, Any]:
    mean, spread = mean_and_spread(model)
    row: dict[str, Any] = {"model": mean, "model_std": spread, "model_per_seed": model}
    if baseline is not None:
        base_mean, base_spread = mean_and_spread(baseline)
        gain = paired_gain(model, baseline)
        row.update(
            baseline=base_mean,
            baseline_std=base_spread,
            baseline_per_seed=baseline,
            gain=gain.mean,
            gain_low=gain.low,
            gain_high=gain.high,
            verdict=gain.verdict,
        )
    return row


def task_rows(plan: SuitePlan, done: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task with every seed done: each metric, and the task score (their mean), for both starts."""
    rows = []
    for task_plan in plan.tasks:
        per_start: dict[str, list[dict[str, dict[str, float]]]] = {}
        for start in plan.starts:
            results = [done.get(_key(task_plan.entry.name, start, seed)) for seed in plan.seeds]
            if any(result is None for result in results):
                break
            per_start[start] = [result["scores"] for result in results if result is not None]
        if len(per_start) != len(plan.starts):
            continue
        metrics = []
        for metric in task_plan.entry.metrics:
            values = {start: [_value(scores, task_plan, metric.key, metric.split) for scores in per_start[start]] for start in plan.starts}
            metrics.append({"key": metric.key, "label": metric.label, "split": metric.split or task_plan.reports[0][0]})
            metrics[-1].update(_summary(values["model"], values.get("baseline")))
        score = {
            start: [sum(per_seed) / len(per_seed) for per_seed in zip(*(row[f"{start}_per_seed"] for row in metrics))]
            for start in plan.starts
        }
        scoring = task_plan.scoring
        rows.append(
            {
                "task": task_plan.entry.name,
                "title": task_plan.entry.title,
                "prefine_task": task_plan.task.name,
                "metrics": metrics,
                "score": _summary(score["model"], score.get("baseline")),
                "trained_on": scoring.dev_split["train"] if scoring and scoring.dev_split else task_plan.train,
                "selected_on": scoring.selection_how if scoring else "",
                "reported_on": dict(task_plan.reports),
                "learning_rate": task_plan.training.learning_rate,
                "batch_size": task_plan.training.batch_size,
                "epochs": task_plan.run.epochs,
            }
        )
    return rows


def suite_average(rows: list[dict[str, Any]], starts: list[str]) -> dict[str, Any] | None:
    """The suite average per seed (the mean of the task scores), summarised like a task: mean, spread and the paired gain."""
    if not rows:
        return None
    per_start = {
        start: [sum(values) / len(values) for values in zip(*(row["score"][f"{start}_per_seed"] for row in rows))] for start in starts
    }
    return _summary(per_start["model"], per_start.get("baseline"))


def _cell(row: dict[str, Any], start: str) -> str:
    return f"{row[start] * 100:.1f} ± {row[f'{start}_std'] * 100:.1f}"


def format_suite_table(results: dict[str, Any]) -> str:
    """The papers' table: one row per task (each official metric as mean ± spread over seeds), the gain and its interval, the average."""
    has_baseline = results["baseline"] != "none"
    header = "| task | metric | model |" + (" baseline | gain | 95% interval | verdict |" if has_baseline else "")
    lines = [header, "|---|---|---:|" + ("---:|---:|---:|---|" if has_baseline else "")]

    def line(title: str, labels: str, metrics: list[dict[str, Any]], score: dict[str, Any]) -> str:
        text = f"| {title} | {labels} | {' / '.join(_cell(metric, 'model') for metric in metrics)} |"
        if not has_baseline:
            return text
        interval = "-" if score["gain_low"] is None else f"{score['gain_low'] * 100:+.1f} to {score['gain_high'] * 100:+.1f}"
        return (
            text + f" {' / '.join(_cell(metric, 'baseline') for metric in metrics)} | {score['gain'] * 100:+.1f} | {interval} | "
            f"{score['verdict']} |"
        )

    for row in results["tasks"]:
        lines.append(line(row["title"], " / ".join(metric["label"] for metric in row["metrics"]), row["metrics"], row["score"]))
    average = results["average"]
    if average is not None:
        lines.append(line(f"**{results['average_name']}**", "task scores", [average], average))
    lines.append("")
    lines.append(
        f"mean ± standard deviation over seeds {', '.join(map(str, results['seeds']))} (x100); gain: of the task score (the mean "
        f"of its metrics), {results['interval']}"
    )
    lines.append(f"{results['average_rule']}")
    lines.append(
        "checkpoints chosen on a dev split carved out of each task's training file; scores on the official dev files, which chose nothing"
    )
    if results["skipped"]:
        lines.append("not run: " + "; ".join(f"{name} ({why})" for name, why in results["skipped"].items()))
    return "\n".join(lines)


def report_suite(plan: SuitePlan, done: dict[str, Any], stopped: str = "") -> dict[str, Any]:
    """Print the table, write the results file and the plot, print the final JSON line."""
    rows = task_rows(plan, done)
    complete = len(rows) == len(plan.suite.tasks) - sum(1 for entry in plan.suite.tasks if entry.unsupported)
    average_name = f"{plan.suite.title} average" if complete else f"average of the {len(rows)} task(s) run"
    results = {
        "suite": plan.suite.name,
        "init": plan.config.init,
        "baseline": plan.config.baseline,
        "data": plan.config.data or "the Hugging Face Hub",
        "seeds": plan.seeds,
        "tasks": rows,
        "average": suite_average(rows, plan.starts),
        "average_name": average_name,
        "average_rule": plan.suite.average + ("" if complete else "; not every task ran, so this is not the suite's score"),
        "interval": INTERVAL_METHOD,
        "selected_on": "a dev split carved out of each task's training file (seeded, stratified by label where there are labels)",
        "reported_on": "the official dev files, scored once with the chosen checkpoint",
        "skipped": plan.skipped,
        "settings": plan.suite.settings_source,
        "stopped": stopped,
        "fine_tune_seconds": round(sum(result["seconds"] for result in done.values()), 1),
    }
    print("\n" + format_suite_table(results))
    plot = plot_suite(results, plan.out / PLOT_FILE)
    if plot:
        print(f"plot: {plot}")
    write_text_atomic(plan.out / RESULTS_FILE, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {plan.out / RESULTS_FILE}")
    print(json.dumps({"suite": results}, ensure_ascii=False))
    return results


def plot_suite(results: dict[str, Any], path: Path) -> Path | None:
    """One bar group per task (model, baseline: the task score with its seed spread); None without matplotlib."""
    if not results["tasks"]:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("(install matplotlib, e.g. pip install prefine[plot], for the suite's bar plot)")
        return None
    rows = [*results["tasks"], *([{"title": "average", "score": results["average"]}] if results["average"] else [])]
    starts = ["model"] + ([] if results["baseline"] == "none" else ["baseline"])
    figure = Figure(figsize=(max(5.0, 1.1 * len(rows)), 4))
    axes = figure.add_subplot()
    width = 0.8 / len(starts)
    for offset, start in enumerate(starts):
        label = results["init"] if start == "model" else ("random weights" if results["baseline"] == "scratch" else results["baseline"])
        axes.bar(
            [index + (offset - (len(starts) - 1) / 2) * width for index in range(len(rows))],
            [row["score"][start] * 100 for row in rows],
            width,
            yerr=[row["score"][f"{start}_std"] * 100 for row in rows],  # the seed spread a re-run would show
            capsize=3,
            label=label,
        )
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels([row["title"] for row in rows], rotation=30, ha="right")
    axes.set_ylabel("task score (mean of its official metrics, x100)")
    axes.set_title(f"{results['suite'].upper()}: mean ± sd over {len(results['seeds'])} seed(s)")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path


# ---------------------------------------------------------------------------------------------
# The command


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run flags given on the command line; --init, --out and --resume are the suite's own, of the same names."""
    return {key: value for key, value in explicit_overrides(args, FinetuneRunConfig).items() if key not in _RUN_FLAGS_SKIPPED}


def _training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags given on the command line; --max-time is the whole suite's, not one fine-tune's."""
    return {key: value for key, value in explicit_overrides(args, TrainingConfig).items() if key != "max_time"}


def _saved_settings(args: argparse.Namespace) -> tuple[SuiteConfig, dict[str, Any], dict[str, Any], bool, dict[str, Any]]:
    """A resumed suite's own settings; only --max-time may change."""
    out = Path(args.resume)
    state = read_state(out)
    saved = state["config"]
    requested = explicit_overrides(args, SuiteConfig)
    check_resume_overrides(saved["suite"], requested, _RESUMABLE_SUITE, "the suite")
    saved_run = dataclasses.asdict(from_dict(FinetuneRunConfig, saved["run"]))
    check_resume_overrides(saved_run, _run_overrides(args), frozenset({"eval_batch_size"}), "the runs")
    saved_training = dataclasses.asdict(dataclasses.replace(FINETUNE_TRAINING_DEFAULTS, **saved["training"]))
    check_resume_overrides(saved_training, _training_overrides(args), _RESUMABLE_TRAINING, "the training")
    if requested.get("suite") and requested["suite"] != saved["suite"]["suite"]:
        raise PrefineError(
            f"{out} holds a {saved['suite']['suite']} suite; resume it with prefine suite {saved['suite']['suite']} --resume {out}"
        )
    suite = from_dict(
        SuiteConfig, {**saved["suite"], "out": str(out), "resume": str(out), **{k: v for k, v in requested.items() if k == "max_time"}}
    )
    run_overrides = {**saved["run"], **{key: value for key, value in _run_overrides(args).items() if key == "eval_batch_size"}}
    training_overrides = {
        **saved["training"],
        **{key: value for key, value in _training_overrides(args).items() if key in _RESUMABLE_TRAINING},
    }
    return suite, run_overrides, training_overrides, bool(saved.get("explicit_steps")), state


def suite_from_args(args: argparse.Namespace) -> int:
    if args.resume:
        config, run_overrides, training_overrides, explicit_steps, state = _saved_settings(args)
    else:
        config = from_args(SuiteConfig, args)
        run_overrides = _run_overrides(args)
        training_overrides = _training_overrides(args)
        explicit_steps = args.max_steps is not None
        state = {"done": {}, "seconds": 0.0}
    run = from_dict(FinetuneRunConfig, run_overrides)
    # A config error in the overrides (a bad --batch-size) fails here, before any work.
    dataclasses.replace(FINETUNE_TRAINING_DEFAULTS, **training_overrides)
    plan = plan_suite(config, run, training_overrides, run_overrides, explicit_steps)
    out = plan.out
    created = not out.exists()
    try:
        carve_selection_splits(plan)
    except PrefineError:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # nothing left behind by a suite that never started
        raise
    state["config"] = {
        "suite": dataclasses.asdict(config),
        "run": run_overrides,
        "training": training_overrides,
        "explicit_steps": explicit_steps,
    }
    if plan.skipped:
        print("skipped: " + "; ".join(f"{name} ({why})" for name, why in plan.skipped.items()))
    write_state(out, state)
    run_suite(plan, state)
    return 0
