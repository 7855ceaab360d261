"""`prefine quickstart`: the whole recipe, offline, in under 10 minutes on a 2-core CPU.

The corpus is the documentation every Python install ships (standard-library docstrings and
the language reference topics, 1.6 MB of English). The quickstart writes it to a text file,
trains a WordPiece tokenizer on it, pre-trains a tiny BERT with `prefine pretrain`'s defaults
for a fixed wall-clock budget (so it takes the same minutes on a slow machine as on a fast one)
while MLM accuracy rises, fills some masks, then fine-tunes on a real held-out task (which
standard-library package does a docstring document?) from the pre-trained weights and from
scratch, and prints the comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from prefine.checkpoint import METRICS_FILE
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.corpus import CorpusConfig
from prefine.corpus.builtin import builtin_pretraining_documents
from prefine.errors import PrefineError
from prefine.machine import describe_machine
from prefine.recipes.builtin_comparison import ComparisonSettings, run_builtin_comparison
from prefine.recipes.fill_mask import load_masked_lm
from prefine.recipes.pretrain import (
    PRETRAIN_DATA_DEFAULTS,
    PRETRAIN_TRAINING_DEFAULTS,
    PretrainRunConfig,
    PretrainSetup,
    new_model_settings,
    run_pretraining,
)
from prefine.tasks.interface import BuiltinComparison, FinetuneTask, builtin_comparisons
from prefine.tokenizer import TokenizerConfig


@dataclass
class QuickstartConfig:
    out: str = option("runs/quickstart", "folder for the quickstart's corpus and runs (replaced if it holds an earlier quickstart)")
    pretrain_time: str = option("4m", "pre-training wall-clock budget: the learning-rate schedule anneals by this deadline on any machine")
    pretrain_steps: int = option(0, "also stop pre-training after this many steps (0: the time budget alone)")
    finetune_steps: int = option(300, "fine-tuning steps per model (pre-trained and from scratch)")
    finetune_time: str = option(
        "15s",
        "wall-clock cap per fine-tune, '' for none: 2 starts x 2 data sizes x --seeds fine-tunes must fit the 10 minutes on a slow "
        "2-core machine too; where --finetune-steps take longer, the schedule anneals by this deadline instead",
    )
    preset: str = option("tiny", "model size to pre-train")
    vocab_size: int = option(4000, "WordPiece vocabulary size (small: a 1.6 MB corpus has few frequent words)")
    seed: int = option(42, "seed for everything (fine-tuning seeds are --seed, --seed+1, ...)")
    seeds: int = option(3, "fine-tuning seeds per start and data size: the gain's 95 percent interval is paired over them (2 or more)")
    num_threads: int = option(0, "CPU threads (0: PyTorch's default)")
    progress: bool = option(True, "show progress bars")
    extra_tasks: str = option(
        "",
        "also compare pre-trained vs random weights on the built-in entity task (ner: entity F1) and/or docstring-summary "
        "task (generation: ROUGE-L and example outputs), e.g. ner,generation; each adds one to a few minutes on a 2-core CPU, "
        "beyond the 10 minutes of the default run",
    )
    extra_task_steps: int = option(
        0, "fine-tuning steps per model of each extra section (0: the steps its task declares: ner 300, generation 150)"
    )

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise PrefineError(f"--seeds {self.seeds} must be at least 1 (3 give the gain an interval)")
        if not self.pretrain_time and self.pretrain_steps < 1:
            raise PrefineError("give the quickstart a pre-training budget: --pretrain-time (e.g. 5m) or --pretrain-steps N")
        extras = extra_comparisons()
        unknown = sorted(set(self.extra_task_list()) - set(extras))
        if unknown:
            raise PrefineError(f"--extra-tasks {', '.join(unknown)} is not a built-in task comparison; choose from {', '.join(extras)}")

    def extra_task_list(self) -> list[str]:
        return [name.strip() for name in self.extra_tasks.split(",") if name.strip()]


def main_comparison() -> tuple[FinetuneTask, BuiltinComparison]:
    """The task comparison the quickstart always runs (the task that declares its comparison `main`)."""
    return next(pair for pair in builtin_comparisons() if pair[1].main)


def extra_comparisons() -> dict[str, tuple[FinetuneTask, BuiltinComparison]]:
    """The optional sections (--extra-tasks), by name: every other task's built-in comparison."""
    return {comparison.name: (task, comparison) for task, comparison in builtin_comparisons() if not comparison.main}


FILL_MASK_EXAMPLES = (
    "Return a new [MASK] containing the items of the iterable.",
    "Raise a [MASK] if the file does not exist.",
    "This module provides functions for working with [MASK] and directories.",
)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("quickstart", help="the whole recipe offline in minutes: pre-train, fill masks, fine-tune vs scratch")
    add_dataclass_arguments(parser, QuickstartConfig)
    parser.set_defaults(func=run_from_args)


def write_builtin_corpus(path: Path) -> int:
    """The built-in documents in the BERT text layout (a sentence a line, a blank line between documents)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for document in builtin_pretraining_documents():
            handle.write("\n".join(document) + "\n\n")
    return path.stat().st_size


def _eval_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    curve = []
    for line in (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if f"eval/{metric}" in record:
            curve.append((record["step"], record[f"eval/{metric}"]))
    return curve


def _example_counts(rows: list[dict]) -> str:
    return " and ".join(str(row["examples"]) for row in rows)


def interpret_comparison(rows: list[dict], pretraining: str, mlm_accuracy: float) -> str:
    """One honest sentence on what the table shows, worded by each gain's 95% interval over seeds.

    "helped" or "hurt" only where the interval excludes zero; elsewhere "no clear difference".
    """

    def gain_text(row: dict) -> str:
        interval = "" if row["gain_low"] is None else f", 95% interval {row['gain_low'] * 100:+.1f} to {row['gain_high'] * 100:+.1f}"
        return f"{row['gain'] * 100:+.1f} accuracy points with {row['examples']} examples{interval}"

    by_verdict: dict[str, list[dict]] = {}
    for row in rows:
        by_verdict.setdefault(row["verdict"], []).append(row)
    parts = []
    for verdict, phrase in (
        ("helped", "helped"),
        ("hurt", "hurt"),
        ("no clear difference", "made no clear difference"),
        ("one seed: no interval", "was measured with one seed (no interval)"),
    ):
        if verdict in by_verdict:
            parts.append(f"{phrase} with {_example_counts(by_verdict[verdict])} labelled examples")
    gains = "; ".join(gain_text(row) for row in rows)
    seeds = len(rows[0]["seeds"]) if rows else 0
    advice = (
        ""
        if set(by_verdict) == {"helped"}
        else (
            " Pre-train longer (--pretrain-time, or prefine pretrain --max-time on your own corpus) or add seeds, "
            "and compare again with prefine compare."
        )
    )
    return (
        f"After {pretraining} (held-out MLM accuracy {mlm_accuracy:.1%}), over {seeds} fine-tuning seeds the pre-trained start "
        f"{' and '.join(parts)} ({gains}).{advice}"
    )


def run_main_comparison(pretrain_dir: Path, out: Path, config: QuickstartConfig) -> list[dict]:
    """The quickstart's own section: fine-tune the main built-in task from the pre-trained run and from scratch."""
    task, comparison = main_comparison()
    print(f"== 4/4 fine-tuning: {comparison.heading}")
    settings = ComparisonSettings(
        steps=config.finetune_steps,
        seed=config.seed,
        seeds=config.seeds,
        num_threads=config.num_threads,
        progress=config.progress,
        max_time=config.finetune_time,
    )
    rows = run_builtin_comparison(task, comparison, pretrain_dir, out, settings)
    assert isinstance(rows, list), "the main comparison is seeded: its rows feed interpret_comparison"
    return rows


def run_extra_comparison(name: str, pretrain_dir: Path, out: Path, config: QuickstartConfig) -> list[dict] | dict:
    """One optional section (--extra-tasks): the same pre-trained-vs-random comparison on another built-in task."""
    task, comparison = extra_comparisons()[name]
    print(f"\n== extra: {comparison.heading}")
    settings = ComparisonSettings(
        steps=config.extra_task_steps or comparison.default_steps,
        seed=config.seed,
        seeds=config.seeds,
        num_threads=config.num_threads,
        progress=config.progress,
    )
    return run_builtin_comparison(task, comparison, pretrain_dir, out, settings)


RESULTS_FILE = "results.json"


def run_quickstart(config: QuickstartConfig) -> int:
    started = time.perf_counter()
    out = Path(config.out)
    if out.exists() and any(out.iterdir()) and not (out / "quickstart.json").exists():
        raise PrefineError(f"{out} exists and is not a quickstart folder; pass --out with a new folder")
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "quickstart.json").write_text(json.dumps({"preset": config.preset}) + "\n", encoding="utf-8")

    print("== 1/4 corpus: Python's own documentation (standard-library docstrings + reference topics)")
    corpus_file = out / "corpus" / "python-docs.txt"
    size = write_builtin_corpus(corpus_file)
    print(f"wrote {corpus_file} ({size / 1e6:.1f} MB)")

    print("== 2/4 tokenizer + pre-training (masked LM)")
    pretrain_dir = out / "pretrained"
    # prefine pretrain's own defaults, with a time budget: what a user who changes nothing gets.
    data = dataclasses.replace(PRETRAIN_DATA_DEFAULTS, max_seq_length=128)
    setup = PretrainSetup(
        run=PretrainRunConfig(
            out=str(pretrain_dir),
            preset=config.preset,
            cache_dir=str(out / "cache"),
            registry=str(out / "registry.sqlite"),
            name="quickstart-pretrain",
        ),
        corpus=CorpusConfig(paths=[str(corpus_file)], format="lines"),
        tokenizer=TokenizerConfig(vocab_size=config.vocab_size),
        data=data,
        model_overrides=new_model_settings({}, data),
        training=dataclasses.replace(
            PRETRAIN_TRAINING_DEFAULTS,
            max_steps=config.pretrain_steps,
            max_time=config.pretrain_time,
            # Steps per minute differ by machine; a curve point about every minute on a slow 2-core CPU.
            eval_every=max(config.pretrain_steps // 6, 1) if config.pretrain_steps else 500,
            save_every=0,
            keep_last=1,
            seed=config.seed,
            num_threads=config.num_threads,
            progress=config.progress,
        ),
    )
    result = run_pretraining(setup)
    curve = _eval_curve(pretrain_dir, "mlm_accuracy")
    print("MLM accuracy on held-out documents: " + "  ".join(f"step {step}: {value:.1%}" for step, value in curve))

    print("== 3/4 fill-mask with the pre-trained model")
    masked_lm = load_masked_lm(str(pretrain_dir))
    for text in FILL_MASK_EXAMPLES:
        candidates = masked_lm.fill_mask(text, top_k=3)[0]
        print(f"{text}\n    -> " + ", ".join(f"{token} ({probability:.0%})" for token, probability in candidates))

    rows = run_main_comparison(pretrain_dir, out, config)
    final_accuracy = curve[-1][1] if curve else float("nan")
    pretraining = f"{result.step} pre-training steps" + (f" (time budget {config.pretrain_time})" if config.pretrain_time else "")
    # Said right under the table it reads, so it is not taken as a verdict on the extra tasks below,
    # which print their own comparison.
    print("\n" + interpret_comparison(rows, pretraining, final_accuracy))
    extra_rows = {name: run_extra_comparison(name, pretrain_dir, out, config) for name in config.extra_task_list()}
    # What benchmarks/results/quickstart.json holds: the tables in README.md and docs/ are rendered from it.
    results = {
        "kind": "quickstart",
        "command": " ".join(["prefine quickstart", *_non_default_flags(config)]),
        "machine": describe_machine(config.num_threads),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "pretraining": {"preset": config.preset, "budget": config.pretrain_time, "steps": result.step, "mlm_accuracy": final_accuracy},
        "finetune_steps": config.finetune_steps,
        "finetune_time": config.finetune_time,
        "comparison": rows,
        "extra": extra_rows,
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nall runs are in {out} (results: {out / RESULTS_FILE}); list them with: prefine runs --registry {out / 'registry.sqlite'}")
    return 0


def _non_default_flags(config: QuickstartConfig) -> list[str]:
    """The flags that reproduce `config`: only those that differ from the defaults."""
    defaults, flags = QuickstartConfig(), []
    for field in dataclasses.fields(config):
        value, flag = getattr(config, field.name), "--" + field.name.replace("_", "-")
        if value != getattr(defaults, field.name):
            flags.append((flag if value else f"--no-{flag[2:]}") if isinstance(value, bool) else f"{flag} {value}")
    return flags


def run_from_args(args: argparse.Namespace) -> int:
    return run_quickstart(from_args(QuickstartConfig, args))
