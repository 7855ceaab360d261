"""Data preparation: raw text to training-ready pre-training instances, speed and peak memory.

The corpus is the built-in one (~1.6 MB of Python documentation) repeated with variations until
it reaches --megabytes: every copy shuffles the document order and drops a different random
10% of the sentences, written in BERT's layout (one sentence per line, blank line between
documents). Both sides use the same WordPiece tokenizer:

  prefine       iter_documents (streaming reader) -> build_token_shards (memory-mapped token
                cache) -> PretrainingBatches.from_tokenizer, which builds epoch 0's MLM+NSP
                instances at --seq-len.
  transformers  datasets.load_dataset("text") -> .map(tokenize, batched) -> .map(group_texts,
                batched) into --seq-len blocks: the recipe of transformers' run_mlm.py.

Each side runs in its own child process, so its peak RSS (getrusage ru_maxrss) is its own;
the baseline RSS after imports is reported too. Throughput is corpus bytes / wall seconds from
the first read to the last instance (imports excluded).

    python benchmarks/data_prep.py --megabytes 200 50 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_WORK_DIR,
    add_results_argument,
    against_strongest_anchor,
    markdown_table,
    median,
    print_json,
    require_bench_dependencies,
    write_results,
)

SIDES = ("prefine", "transformers")


def generated_corpus(work_dir: Path, megabytes: int, seed: int) -> Path:
    """The built-in corpus repeated with variations up to `megabytes` MB (written once, then reused)."""
    path = work_dir / f"corpus-{megabytes}mb-{seed}.txt"
    if path.is_file():
        return path
    from prefine.corpus.builtin import builtin_pretraining_documents

    documents = list(builtin_pretraining_documents())
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    written = 0
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        while written < target:
            order = list(range(len(documents)))
            rng.shuffle(order)
            for index in order:
                kept = [sentence for sentence in documents[index] if rng.random() >= 0.1] or documents[index][:1]
                text = "\n".join(kept) + "\n\n"
                handle.write(text)
                written += len(text.encode("utf-8"))
                if written >= target:
                    break
    partial.rename(path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_prefine(corpus: Path, tokenizer_dir: Path, scratch: Path, seq_len: int) -> dict:
    from prefine.corpus import CorpusConfig, iter_documents
    from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, build_token_shards
    from prefine.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    baseline = current_rss_mb()
    start = time.perf_counter()
    documents = iter_documents(CorpusConfig(paths=[str(corpus)], format="lines"))
    shards = build_token_shards(documents, tokenizer, scratch / "shards")
    batches = PretrainingBatches.from_tokenizer(
        shards, tokenizer, PretrainingDataConfig(max_seq_length=seq_len), seed=0, global_batch_size=32
    )
    instances = batches.instances_per_epoch(0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": shards.num_tokens, "instances": instances, "baseline_rss_mb": baseline}


def run_transformers(corpus: Path, tokenizer_dir: Path, scratch: Path, seq_len: int) -> dict:
    from itertools import chain

    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    baseline = current_rss_mb()
    start = time.perf_counter()
    raw = datasets.load_dataset("text", data_files=str(corpus), split="train", cache_dir=str(scratch / "hf-cache"))

    def tokenize(examples):
        return tokenizer(examples["text"], return_special_tokens_mask=True)

    def group_texts(examples):
        # run_mlm.py's group_texts: concatenate everything, cut into seq_len blocks, drop the remainder.
        concatenated = {key: list(chain(*examples[key])) for key in examples}
        total = len(concatenated["input_ids"]) // seq_len * seq_len
        return {key: [values[i : i + seq_len] for i in range(0, total, seq_len)] for key, values in concatenated.items()}

    tokenized = raw.map(tokenize, batched=True, remove_columns=["text"])
    grouped = tokenized.map(group_texts, batched=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "instances": len(grouped), "baseline_rss_mb": baseline}


def child(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f"dataprep-{args.side}-", dir=args.work_dir))
    try:
        runner = run_prefine if args.side == "prefine" else run_transformers
        record = runner(args.corpus, args.tokenizer_dir, scratch, args.seq_len)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(record))


def run_side(side: str, corpus: Path, tokenizer_dir: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--side",
        side,
        "--corpus",
        str(corpus),
        "--tokenizer-dir",
        str(tokenizer_dir),
        "--seq-len",
        str(args.seq_len),
        "--work-dir",
        str(args.work_dir),
    ]
    environment = None
    if args.threads:
        import os

        environment = {**os.environ, "RAYON_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode or not lines:
        sys.exit(f"{side} child failed:\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, nargs="+", default=[200], help="corpus sizes to run (e.g. 200 50)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side and size, alternating sides; medians reported")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="Rust tokenizer threads (RAYON_NUM_THREADS) for both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    add_results_argument(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return
    require_bench_dependencies("transformers", "datasets")
    from common import benchmark_tokenizer, versions

    _, tokenizer_dir = benchmark_tokenizer(args.work_dir, args.vocab_size)
    rows, results, headlines = [], [], {}
    for megabytes in args.megabytes:
        corpus = generated_corpus(args.work_dir, megabytes, args.seed)
        size = corpus.stat().st_size
        measured: dict[str, list[dict]] = {side: [] for side in SIDES}
        for repeat in range(args.repeats):
            for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
                measured[side].append(run_side(side, corpus, tokenizer_dir, args))
                print(f"{megabytes} MB {side}: {measured[side][-1]}", file=sys.stderr)
        seconds = {side: median([run["seconds"] for run in runs]) for side, runs in measured.items()}
        for side, runs in measured.items():
            record = {
                "megabytes": megabytes,
                "corpus_bytes": size,
                "side": side,
                "bytes_per_s": size / seconds[side],
                "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                "baseline_rss_mb": median([run["baseline_rss_mb"] for run in runs]),
                "instances": runs[-1]["instances"],
                "seconds": [run["seconds"] for run in runs],
            }
            results.append(record)
            rows.append(
                [
                    f"{size / 1e6:.0f} MB",
                    side,
                    f"{record['bytes_per_s'] / 1e6:.2f} MB/s",
                    f"{seconds[side]:.0f}",
                    f"{record['peak_rss_mb']:.0f}",
                    f"{record['baseline_rss_mb']:.0f}",
                    f"{record['instances']:,}",
                ]
            )
        rows.append([f"{size / 1e6:.0f} MB", "**speed-up**", f"**{seconds['transformers'] / seconds['prefine']:.2f}x**", "", "", "", ""])
        # transformers' run_mlm.py recipe is the one anchor side.
        headline = against_strongest_anchor({side: size / 1e6 / seconds[side] for side in SIDES}, "MB/s")
        headline["text"] += f" ({size / 1e6:.0f} MB corpus)"
        headlines[f"{size / 1e6:.0f} MB"] = headline
    conditions = f"Sequence length {args.seq_len}, {args.threads} tokenizer threads, median of {args.repeats}"
    header = ["corpus", "side", "throughput", "seconds", "peak RSS MB", "RSS after imports MB", "instances"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    record = {
        "benchmark": "data_prep",
        "repeats": args.repeats,
        "seq_len": args.seq_len,
        "versions": versions(),
        "results": results,
        "headlines": headlines,
    }
    # The results file's headline is the first corpus size measured (the others are in the table and in "headlines").
    headline = next(iter(headlines.values()), None)
    write_results(args.results, "data_prep", header, rows, record, args.threads, conditions, headline)
    print_json(record)


if __name__ == "__main__":
    main()
