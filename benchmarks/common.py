"""Shared pieces of the benchmarks: dependency check, threads, the benchmark tokenizer, the
machine's matmul peak, medians and result tables.

Every benchmark runs prefine and transformers side by side in one process (or one child process
per side), with the same data, model sizes, sequence length, batch size and threads, alternating
the two sides on every repeat so that noise from a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

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


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def benchmark_tokenizer(work_dir: Path, vocab_size: int):
    """A WordPiece tokenizer trained once on the built-in corpus and reused from disk afterwards
    (WordPiece training is not reproducible run to run, and both sides must share one vocabulary)."""
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
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import transformers

    import prefine

    return {"torch": torch.__version__, "transformers": transformers.__version__, "prefine": getattr(prefine, "__version__", "dev")}


def print_json(record: dict) -> None:
    print(json.dumps(record, sort_keys=True))
