"""Inference throughput: examples/s classifying SST-2 dev, text in, logits out.

One random-init classifier of --preset is saved as a prefine checkpoint and exported with
`export_hf`; both sides run those same weights, batch --batch-size, same threads:

  prefine       encode_examples -> predict_logits (length-sorted batches, padded per batch).
  transformers  pipeline("text-classification", model=<exported folder>, batch_size=...).

--hf-variants adds transformers sides tuned as a user would: `sorted` feeds the pipeline texts
sorted by length (and restores their order), so batches pad little; `eager`/`sdpa` picks
`attn_implementation`. The default runs the plain pipeline and both tuned variants.

Timing includes tokenization on both sides. The script also checks that both sides predict
the same labels (they must: same weights, same tokenizer).

A second table times the whole commands a user runs, each in a fresh process, so Python
start-up, imports and model loading count too: `prefine predict RUN --data FILE --output OUT`
on a real run folder (made by `prefine finetune --from-scratch` for one step on the export
above), against a script that builds the same `pipeline` on that run's `prefine export` and
writes one JSON line per text. Both get OMP_NUM_THREADS=--threads.

    python benchmarks/inference_throughput.py --steps 3 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_common_arguments,
    against_strongest_anchor,
    benchmark_tokenizer,
    markdown_table,
    median,
    print_json,
    require_bench_dependencies,
    set_threads,
    versions,
    write_results,
)

require_bench_dependencies("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from finetune_throughput import DEFAULT_SST2, read_sst2  # noqa: E402

from prefine.checkpoint import TOKENIZER_DIR, save_checkpoint  # noqa: E402
from prefine.model import BertForSequenceClassification, preset_config  # noqa: E402
from prefine.recipes.export import export_hf  # noqa: E402
from prefine.tasks.classification import encode_examples, predict_logits  # noqa: E402
from prefine.tokenizer import save_tokenizer  # noqa: E402


def exported_classifier(tokenizer, work_dir: Path, preset: str, seed: int) -> tuple[BertForSequenceClassification, Path]:
    """A random-init classifier, saved as a prefine run checkpoint and exported for transformers."""
    torch.manual_seed(seed)
    config = preset_config(preset, vocab_size=tokenizer.get_vocab_size(with_added_tokens=True))
    model = BertForSequenceClassification(config, num_labels=2).eval()
    run_dir = work_dir / f"inference-run-{preset}"
    shutil.rmtree(run_dir, ignore_errors=True)
    save_tokenizer(tokenizer, run_dir / TOKENIZER_DIR, model_max_length=config.max_position_embeddings)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForSequenceClassification"],
        "id2label": {"0": "negative", "1": "positive"},
        "label2id": {"negative": 0, "positive": 1},
    }
    checkpoint = save_checkpoint(run_dir, 0, model.state_dict(), checkpoint_config, None, keep_last=1)
    export_dir = work_dir / f"inference-export-{preset}"
    shutil.rmtree(export_dir, ignore_errors=True)
    return model, export_hf(checkpoint, export_dir)


def prefine_predict(model, tokenizer, texts: list[str], batch_size: int, max_seq_length: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    examples = encode_examples(texts, None, tokenizer, max_seq_length)
    logits = predict_logits(model, examples, batch_size, torch.device("cpu"), pad_id=tokenizer.token_to_id("[PAD]"))
    return time.perf_counter() - start, logits.argmax(-1)


def hf_predict(
    classifier, texts: list[str], batch_size: int, max_seq_length: int, sort_by_length: bool = False
) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    order = np.arange(len(texts))
    if sort_by_length:  # tokenizing twice is part of the price a user pays for sorting
        lengths = [len(ids) for ids in classifier.tokenizer(texts, truncation=True, max_length=max_seq_length)["input_ids"]]
        order = np.argsort(-np.asarray(lengths), kind="stable")
    outputs = classifier([texts[index] for index in order], batch_size=batch_size, truncation=True, max_length=max_seq_length)
    seconds = time.perf_counter() - start
    label2id = classifier.model.config.label2id
    predicted = np.empty(len(texts), dtype=np.int64)
    predicted[order] = [label2id[output["label"]] for output in outputs]
    return seconds, predicted


# What a transformers user runs: read the file, build the pipeline, write one JSON line per text.
HF_PIPELINE_SCRIPT = """
import csv, json, sys
from transformers import pipeline
model, data, output, batch_size, max_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(data, encoding="utf-8", newline="") as handle:
    texts = [row["sentence"] for row in csv.DictReader(handle, delimiter="\\t", quoting=csv.QUOTE_NONE)]
classifier = pipeline("text-classification", model=model, device="cpu")
with open(output, "w", encoding="utf-8") as handle:
    for text, result in zip(texts, classifier(texts, batch_size=batch_size, truncation=True, max_length=max_length)):
        handle.write(json.dumps({"text": text, "label": result["label"]}) + "\\n")
"""


def write_tsv(path: Path, texts: list[str], labels) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
        writer.writerow(["label", "sentence"])
        writer.writerows(zip(labels, texts))
    return path


def whole_commands(args: argparse.Namespace, texts: list[str], labels, init_dir: Path) -> tuple[dict[str, list[float]], float]:
    """Seconds of `prefine predict` and of the pipeline script over `texts`, each a fresh process; and label agreement."""
    work_dir = args.work_dir
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    prefine = [sys.executable, "-m", "prefine"]
    data = write_tsv(work_dir / "inference-e2e-data.tsv", texts, labels)
    train = write_tsv(work_dir / "inference-e2e-train.tsv", texts[:256], labels[:256])
    run_dir, export_dir = work_dir / "inference-e2e-run", work_dir / "inference-e2e-export"
    for folder in (run_dir, export_dir):
        shutil.rmtree(folder, ignore_errors=True)
    setup = [
        [
            *prefine,
            "finetune",
            "--init",
            str(init_dir),
            "--from-scratch",
            "--train",
            str(train),
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--out",
            str(run_dir),
            "--max-steps",
            "1",
            "--max-seq-length",
            str(args.max_seq_length),
            "--no-progress",
            "--registry",
            str(work_dir / "inference-e2e-registry.sqlite"),
        ],
        [*prefine, "export", str(run_dir), "--format", "hf", "--out", str(export_dir)],
    ]
    for command in setup:
        subprocess.run(command, check=True, env=environment, capture_output=True)
    outputs = {"prefine": work_dir / "inference-e2e-prefine.jsonl", "transformers": work_dir / "inference-e2e-transformers.jsonl"}
    commands = {
        "prefine": [
            *prefine,
            "predict",
            str(run_dir),
            "--data",
            str(data),
            "--output",
            str(outputs["prefine"]),
            "--batch-size",
            str(args.batch_size),
        ],
        "transformers": [
            sys.executable,
            "-c",
            HF_PIPELINE_SCRIPT,
            str(export_dir),
            str(data),
            str(outputs["transformers"]),
            str(args.batch_size),
            str(args.max_seq_length),
        ],
    }
    measured: dict[str, list[float]] = {side: [] for side in commands}
    for repeat in range(args.repeats):
        for side in ("prefine", "transformers") if repeat % 2 == 0 else ("transformers", "prefine"):
            start = time.perf_counter()
            completed = subprocess.run(commands[side], env=environment, capture_output=True, text=True)
            measured[side].append(time.perf_counter() - start)
            if completed.returncode:
                sys.exit(f"{side} command failed:\n{completed.stderr[-3000:]}")
        print(
            f"whole command, repeat {repeat}: prefine {measured['prefine'][-1]:.1f}s transformers {measured['transformers'][-1]:.1f}s",
            file=sys.stderr,
        )
    predicted = {
        side: [json.loads(line)["label"] for line in path.read_text(encoding="utf-8").splitlines()] for side, path in outputs.items()
    }
    if len(predicted["prefine"]) != len(texts) or len(predicted["transformers"]) != len(texts):
        sys.exit(
            f"expected {len(texts)} predictions, got {len(predicted['prefine'])} (prefine) "
            f"and {len(predicted['transformers'])} (transformers)"
        )
    agreement = float(np.mean([a == b for a, b in zip(predicted["prefine"], predicted["transformers"])]))
    return measured, agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=1, repeats=3)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--sst2-dir", type=Path, default=DEFAULT_SST2, help="folder with SST-2's dev.tsv")
    parser.add_argument(
        "--hf-variants",
        default="default,sorted-sdpa,sorted-eager",
        help="transformers sides: default (plain pipeline), sorted-ATTN (inputs sorted by length, attn_implementation ATTN)",
    )
    parser.add_argument(
        "--no-whole-command",
        dest="whole_command",
        action="store_false",
        help="skip the table of whole `prefine predict` / pipeline commands",
    )
    args = parser.parse_args()
    dev_file = args.sst2_dir / "dev.tsv"
    if not dev_file.is_file():
        print(f"skipped: SST-2 not found at {dev_file}; pass --sst2-dir pointing at a folder with dev.tsv (columns label, sentence)")
        return
    set_threads(args.threads)
    from transformers import pipeline

    tokenizer, _ = benchmark_tokenizer(args.work_dir, args.vocab_size)
    texts, labels = read_sst2(dev_file)
    texts, labels = texts * args.steps, np.tile(labels, args.steps)  # --steps passes over dev per timed run
    model, export_dir = exported_classifier(tokenizer, args.work_dir, args.preset, args.seed)
    variants = [name.strip() for name in args.hf_variants.split(",") if name.strip()]
    classifiers = {}
    for variant in variants:
        attention = variant.split("-", 1)[1] if "-" in variant else ""
        classifiers[variant] = pipeline(
            "text-classification", model=str(export_dir), device="cpu", model_kwargs={"attn_implementation": attention} if attention else {}
        )

    def run_side(side: str, batch_texts: list[str]) -> tuple[float, np.ndarray]:
        if side == "prefine":
            return prefine_predict(model, tokenizer, batch_texts, args.batch_size, args.max_seq_length)
        variant = side.removeprefix("transformers ")
        return hf_predict(
            classifiers[variant], batch_texts, args.batch_size, args.max_seq_length, sort_by_length=variant.startswith("sorted")
        )

    sides = ["prefine"] + [f"transformers {variant}" for variant in variants]
    for _ in range(args.warmup):  # one small untimed call each: lazy initialisation, allocator warm-up
        for side in sides:
            run_side(side, texts[: args.batch_size])
    measured: dict[str, list[float]] = {side: [] for side in sides}
    predictions = {}
    for repeat in range(args.repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            seconds, predictions[side] = run_side(side, texts)
            measured[side].append(seconds)
        print(f"repeat {repeat}: " + "  ".join(f"{side} {times[-1]:.1f}s" for side, times in measured.items()), file=sys.stderr)
    agreement = min(float((predictions["prefine"] == predictions[side]).mean()) for side in sides[1:])

    rows, results = [], []
    for side, times in measured.items():
        record = {"side": side, "examples_per_s": len(texts) / median(times), "seconds": times}
        results.append(record)
        rows.append([f"{args.preset} SST-2 dev", side, record["examples_per_s"]])
    for side in sides[1:]:
        rows.append(
            [f"{args.preset} SST-2 dev", f"**speed-up vs {side}**", f"**{median(measured[side]) / median(measured['prefine']):.2f}x**"]
        )
    conditions = (
        f"{len(texts)} examples, batch {args.batch_size}, median of {args.repeats}, {args.threads} threads, "
        f"predicted labels agree on {100 * agreement:.1f}%"
    )
    header = ["model", "side", "examples/s"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    headline = against_strongest_anchor({record["side"]: record["examples_per_s"] for record in results}, "examples/s")
    record = {
        "benchmark": "inference_throughput",
        "preset": args.preset,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": args.threads,
        "label_agreement": agreement,
        "versions": versions(),
        "results": results,
        "headline": headline,
    }
    more_tables = []
    if args.whole_command:
        commands, command_agreement = whole_commands(args, texts, labels, export_dir)
        command_rows = [
            [f"{args.preset} SST-2 dev", side, f"{median(times):.1f}", len(texts) / median(times)] for side, times in commands.items()
        ]
        command_rows.append(
            [f"{args.preset} SST-2 dev", "**speed-up**", f"**{median(commands['transformers']) / median(commands['prefine']):.2f}x**", ""]
        )
        command_conditions = (
            f"Whole commands in fresh processes (start-up, imports, model load, {len(texts)} examples, output file), "
            f"median of {args.repeats}, predicted labels agree on {100 * command_agreement:.1f}%"
        )
        command_header = ["model", "command", "seconds", "examples/s"]
        print(f"\n{command_conditions}\n")
        print(markdown_table(command_header, command_rows))
        record["whole_command"] = {"label_agreement": command_agreement, "seconds": commands}
        more_tables.append((command_conditions, command_header, command_rows))
    write_results(args.results, "inference_throughput", header, rows, record, args.threads, conditions, headline, more_tables)
    print_json(record)


if __name__ == "__main__":
    main()
