"""Shared pieces of the benchmarks: dependency check, threads, the benchmark tokenizer, the
machine's matmul peak, medians, result tables and the results files the published tables are
rendered from (`--results`, read by scripts/render_results.py).

Every benchmark runs prefine and transformers side by side in one process (or one child process
per side), with the same data, model sizes, sequence length, batch size and threads, alternating
the two sides on every repeat so that noise from a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_WORK_DIR = Path("/tmp/prefine-bench")


def require_bench_dependencies(*modules: str) -> None:
    """Exit with the install command when transformers, datasets or psutil is missing."""
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        sys.exit(f"missing {', '.join(missing)}; install the benchmark extras with: pip install -e .[bench]")


def add_common_arguments(parser: argparse.ArgumentParser, steps: int, repeats: int) -> None:
    parser.add_argument("--steps", type=int, default=steps, help="timed steps (or passes) per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each timed run")
    parser.add_argument("--repeats", type=int, default=repeats, help="repeats per side, alternating sides; medians are reported")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="tokenizer, token caches and exports (outside the repo)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=30522,
        help="target vocabulary of the benchmark tokenizer (the built-in corpus fills 9,786 pieces)",
    )
    add_results_argument(parser)


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="also write the printed tables and JSON record here (benchmarks/results/NAME.json, rendered by scripts/render_results.py)",
    )


BERT_VOCAB_SIZE = 30522


def add_model_vocab_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-vocab-size",
        type=int,
        default=BERT_VOCAB_SIZE,
        help="embedding rows of both sides' models (default: BERT's 30,522; at least the tokenizer's size)",
    )


def model_vocab_size(tokenizer, requested: int) -> int:
    """Embedding rows of the benchmark models: BERT's 30,522 unless asked otherwise.

    The built-in corpus supports only ~9.8k WordPiece pieces, while the compact BERTs the
    presets follow have 30,522. The vocabulary size sets the cost of the MLM head and of the
    optimizer update of the embedding table, so both sides build models at BERT's size; the
    tokenizer's pieces fill the first rows and the rest are never looked up, as in any
    vocabulary padded to a round size.
    """
    return max(requested, tokenizer.get_vocab_size(with_added_tokens=True))


def length_grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int, megabatch_batches: int = 50) -> np.ndarray:
    """transformers' LengthGroupedSampler: chunks of 50 batches, each sorted by length, longest first."""
    chunk = batch_size * megabatch_batches
    return np.concatenate([part[np.argsort(-lengths[part], kind="stable")] for part in np.split(order, range(chunk, len(order), chunk))])


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def benchmark_tokenizer(work_dir: Path, vocab_size: int):
    """A WordPiece tokenizer trained once on the built-in corpus and reused from disk afterwards
    (training takes a while, and every side of a benchmark must share one vocabulary)."""
    from prefine.tokenizer import TokenizerConfig, load_tokenizer, save_tokenizer, train_tokenizer

    directory = work_dir / f"tokenizer-{vocab_size}"
    if (directory / "tokenizer.json").is_file():
        return load_tokenizer(directory), directory
    from prefine.corpus.builtin import builtin_pretraining_documents

    sentences = (sentence for document in builtin_pretraining_documents() for sentence in document)
    tokenizer = train_tokenizer(sentences, TokenizerConfig(vocab_size=vocab_size), show_progress=False)
    save_tokenizer(tokenizer, directory, model_max_length=512)
    return tokenizer, directory


def hf_tokenizer(tokenizer_dir: Path):
    """prefine's saved tokenizer as a transformers fast tokenizer (the folder is what export writes)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def matmul_peak_flops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 FLOP/s of a large square torch.mm on `threads` threads: the practical peak MFU refers to."""
    set_threads(threads)
    left, right = torch.randn(size, size), torch.randn(size, size)
    torch.mm(left, right)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(left, right)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def median(values: list[float]) -> float:
    return statistics.median(values)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import transformers

    import prefine

    return {"torch": torch.__version__, "transformers": transformers.__version__, "prefine": getattr(prefine, "__version__", "dev")}


def print_json(record: dict) -> None:
    print(json.dumps(record, sort_keys=True))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def invoked_command() -> str:
    """The command line as a reader would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    root = Path(__file__).resolve().parents[1]
    shown = script.relative_to(root).as_posix() if script.is_relative_to(root) else script.as_posix()
    return " ".join(["python", shown, *(shlex.quote(argument) for argument in sys.argv[1:])])


def source_commit() -> str:
    """The commit the measured code came from, marked "+changes" when the checkout had uncommitted edits."""
    root = Path(__file__).resolve().parents[1]

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit, changes = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changes else "")


def against_strongest_anchor(rates: dict[str, float], unit: str, ours: str | tuple[str, ...] = "prefine") -> dict:
    """prefine's rate over the fastest anchor side measured (the one a careful user would run), printed and returned
    as the headline a results file carries: the ratio is never against a weaker configuration than the best one.

    `ours` may name several prefine sides (its backends); the fastest of them is prefine's rate, and the
    headline names it, so a reader sees which of prefine's paths the ratio is for."""
    our_sides = (ours,) if isinstance(ours, str) else tuple(ours)
    best = max(our_sides, key=rates.__getitem__)
    anchors = {side: rate for side, rate in rates.items() if side not in our_sides}
    anchor = max(anchors, key=anchors.__getitem__)
    ratio = rates[best] / anchors[anchor]
    text = f"{ratio:.2f}x the {unit} of {anchor}" + (f" ({best}, prefine's fastest path)" if len(our_sides) > 1 else "")
    headline = {"anchor": anchor, "ratio": round(ratio, 3), "unit": unit, "text": text}
    if len(our_sides) > 1:
        headline["prefine_side"] = best
    print(f"strongest anchor: {anchor} ({anchors[anchor]:,.1f} {unit}); {best} {rates[best]:,.1f} {unit}: {ratio:.2f}x")
    return headline


def write_results(
    path: Path | None,
    benchmark: str,
    header: list[str],
    rows: list[list],
    record: dict,
    threads: int,
    conditions: str = "",
    headline: dict | None = None,
    more_tables: list[tuple[str, list[str], list[list]]] = (),
    notes: list[str] = (),
) -> None:
    """Write what the benchmark printed (its table, exactly as printed, and its JSON record) with the
    command, machine, commit and date, so a published table is rendered from the run itself.

    `conditions` is the line printed above the table (batch, steps, repeats); `headline`, where the
    benchmark has one, is the ratio against the strongest anchor it measured:
    {"text": ..., "ratio": ..., "anchor": ...}; `more_tables` are further (conditions, header, rows)
    tables the same run printed; `notes` are lines it printed below them.
    """
    if path is None:
        return
    from prefine.machine import describe_machine

    results = {
        "kind": "table",
        "benchmark": benchmark,
        "command": invoked_command(),
        "commit": source_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(threads),
        "conditions": conditions.strip(),
        "header": header,
        "rows": [[_cell(value) for value in row] for row in rows],
        "more_tables": [
            {"conditions": text.strip(), "header": more_header, "rows": [[_cell(value) for value in row] for row in more_rows]}
            for text, more_header, more_rows in more_tables
        ],
        "notes": list(notes),
        "headline": headline,
        "record": record,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}", file=sys.stderr)
