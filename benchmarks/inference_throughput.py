"""Inference throughput: examples/s classifying SST-2 dev, text in, logits out.

One random-init classifier of --preset is saved as a prefine checkpoint and exported with
`export_hf`; every side runs those same weights, batch --batch-size, same threads:

  prefine       encode_examples -> predict_logits (length-sorted batches, padded per batch).
  transformers  pipeline("text-classification", model=<exported folder>, batch_size=...).

--prefine-backends picks prefine's sides, each the path `prefine predict/evaluate/serve --backend B`
runs (`use_onnx_encoder` swaps the encoder; tokenizing, batching and the head stay prefine's):
`torch` (PyTorch), `onnx` (the encoder in ONNX Runtime fp32) and `onnx-int8` (its linear layers
quantized). The headline is prefine's fastest fp32 path against the fastest fp32 anchor, and names
the path; int8's ratio to prefine's fp32 paths goes in a note.

--hf-variants adds transformers sides tuned as a user would: `sorted` feeds the pipeline texts
sorted by length (and restores their order), so batches pad little; `eager`/`sdpa` picks
`attn_implementation`. The default runs the plain pipeline and both tuned variants.

--ort-variants adds ONNX Runtime sides on the same weights: `fused` is what optimum gives a
transformers user (the exported transformers model through onnxruntime.transformers' BERT
optimizer: fused attention, embeddings and skip LayerNorms); `fp32` runs the classifier written
by prefine's own ONNX export (`write_onnx`, the function behind `prefine export --format onnx`,
checked against prefine's logits) in an `onnxruntime.InferenceSession` with ORT_ENABLE_ALL graph
optimizations, intra-op threads = --threads, one inter-op thread and sequential execution; `int8`
runs the same graph after `quantize_dynamic(..., weight_type=QuantType.QInt8, per_channel=...)`
(--ort-per-channel; per tensor by default: per channel measured no faster here, and ORT's
quantization pre-processing sped this graph up nothing) under the same session settings. The
`fp32` and `int8` sides run with ORT's default spinning workers, as a user who only sets the
thread count gets. Each tokenizes with the export's fast
tokenizer, sort the texts by length into batches of --batch-size (order restored afterwards) and
pad per batch. int8 is another precision, so the headline compares prefine with the fastest fp32
anchor only.

Timing includes tokenization on every side. The script reports how often each side predicts the
label prefine's torch path predicts (fp32 sides must agree: same weights, same tokenizer), and each side's
accuracy on SST-2 dev; the weights are random, so that accuracy is chance and says nothing about
what int8 costs on a fine-tuned model.

A second table times the whole commands a user runs, each in a fresh process, so Python
start-up, imports and model loading count too: `prefine predict RUN --data FILE --output OUT`
on a real run folder (made by `prefine finetune --from-scratch` for one step on the export
above), against a script that builds the same `pipeline` on that run's `prefine export` and
writes one JSON line per text. Both get OMP_NUM_THREADS=--threads.

    python benchmarks/inference_throughput.py --threads 2 --steps 3 --repeats 5 [--batch-size 1 --no-whole-command]
"""

from __future__ import annotations

import argparse
import copy
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
    hf_tokenizer,
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


def listed(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    """The comma-separated names of `flag`, each one of `allowed` (exits with one line otherwise)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        sys.exit(f"unknown {flag} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names


def prefine_models(model, backends: list[str], work_dir: Path, threads: int) -> dict[str, torch.nn.Module]:
    """One model per prefine backend on the same weights: the torch one as is, the others with the encoder in ONNX Runtime."""
    models = {}
    for backend in backends:
        if backend == "torch":
            models[backend] = model
            continue
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print(f"skipped prefine {backend}: onnxruntime is not installed (pip install -e .[onnx])", file=sys.stderr)
            continue
        from prefine.interop.onnx_runtime import use_onnx_encoder

        # The graph cache lives in the work folder, rebuilt each run: the timing never reads a stale graph.
        cache = work_dir / "inference-prefine-onnx-cache"
        shutil.rmtree(cache, ignore_errors=True)
        models[backend] = use_onnx_encoder(copy.deepcopy(model), backend, cache, threads=threads)
    set_threads(threads)  # the handover left PyTorch one thread; run_side sets each side's count before it runs
    return models


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


def transformers_fused_graph(export_dir: Path, onnx_dir: Path, config) -> Path:
    """What optimum's ORTOptimizer (level 2) gives a transformers user: the exported BertForSequenceClassification
    (eager attention, the pattern ORT's fusions know) through onnxruntime.transformers' BERT optimizer, which fuses
    embeddings + LayerNorm, attention, skip + LayerNorm and bias + GELU into ORT's CPU kernels."""
    from onnxruntime.transformers import optimizer
    from transformers import AutoModelForSequenceClassification

    hf_model = AutoModelForSequenceClassification.from_pretrained(str(export_dir), attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 16), dtype=torch.long) for _ in names)
    plain = onnx_dir / "transformers.onnx"
    torch.onnx.export(
        hf_model,
        example,
        str(plain),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
        opset_version=17,
        dynamo=False,
    )
    fused = optimizer.optimize_model(
        str(plain), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=0
    )
    counts = fused.get_fused_operator_statistics()
    print(f"onnxruntime fused: {', '.join(f'{count} {name}' for name, count in counts.items() if count)}", file=sys.stderr)
    path = onnx_dir / "transformers-fused.onnx"
    fused.save_model_to_file(str(path))
    return path


def onnxruntime_sessions(
    model, work_dir: Path, variants: list[str], threads: int, max_seq_length: int, per_channel: bool, export_dir: Path
) -> dict:
    """ONNX Runtime sessions on the model's weights, one per variant (fp32, int8), set up as a careful user would."""
    if not variants:
        return {}
    try:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("skipped the onnxruntime sides: onnxruntime is not installed (pip install -e .[onnx])", file=sys.stderr)
        return {}
    from prefine.interop.onnx_export import example_batches, write_onnx

    onnx_dir = work_dir / "inference-onnx"
    shutil.rmtree(onnx_dir, ignore_errors=True)
    onnx_dir.mkdir(parents=True)
    paths = {"fp32": onnx_dir / "model.onnx"}
    config = model.config
    difference = write_onnx(model, paths["fp32"], ["logits"], example_batches(config.vocab_size, config.type_vocab_size, max_seq_length))
    print(f"onnx export: {paths['fp32']} (logits within {difference:.1e} of prefine's)", file=sys.stderr)
    if "int8" in variants:
        paths["int8"] = onnx_dir / "model-int8.onnx"
        quantize_dynamic(paths["fp32"], paths["int8"], weight_type=QuantType.QInt8, per_channel=per_channel)
    if "fused" in variants:
        paths["fused"] = transformers_fused_graph(export_dir, onnx_dir, config)
    sessions = {}
    for variant in variants:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        sessions[variant] = onnxruntime.InferenceSession(str(paths[variant]), options, providers=["CPUExecutionProvider"])
    return sessions


def onnxruntime_predict(session, tokenizer, texts: list[str], batch_size: int, max_seq_length: int) -> tuple[float, np.ndarray]:
    """Tokenize once with the fast tokenizer, run length-sorted batches padded per batch, restore the order."""
    start = time.perf_counter()
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, return_attention_mask=False)
    input_ids, token_type_ids = encoded["input_ids"], encoded["token_type_ids"]
    lengths = np.fromiter((len(ids) for ids in input_ids), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")
    predicted = np.empty(len(texts), dtype=np.int64)
    pad_id = tokenizer.pad_token_id
    for begin in range(0, len(texts), batch_size):
        rows = order[begin : begin + batch_size]
        width = int(lengths[rows[0]])
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for row, index in enumerate(rows):
            ids[row, : lengths[index]] = input_ids[index]
            types[row, : lengths[index]] = token_type_ids[index]
        mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
        (logits,) = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        predicted[rows] = logits.argmax(-1)
    return time.perf_counter() - start, predicted


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
        "--prefine-backends",
        default="torch,onnx,onnx-int8",
        help="prefine sides, each a --backend of prefine predict: torch, onnx, onnx-int8 (the onnx ones need onnxruntime)",
    )
    parser.add_argument(
        "--hf-variants",
        default="default,sorted-sdpa,sorted-eager",
        help="transformers sides: default (plain pipeline), sorted-ATTN (inputs sorted by length, attn_implementation ATTN)",
    )
    parser.add_argument(
        "--ort-variants",
        default="fp32,fused,int8",
        help="ONNX Runtime sides: fp32 (prefine's ONNX export), fused (transformers' export through ORT's BERT optimizer, "
        "as optimum does), int8 (prefine's export, dynamic quantization); an empty string skips them",
    )
    parser.add_argument(
        "--ort-per-channel",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="quantize the int8 side's weights per output channel (default: per tensor)",
    )
    parser.add_argument(
        "--no-whole-command",
        dest="whole_command",
        action="store_false",
        help="skip the table of whole `prefine predict` / pipeline commands",
    )
    args = parser.parse_args()
    # Checked before any work: a typo in a side's name must not cost a tokenizer, an export and a graph build.
    prefine_backends = listed(args.prefine_backends, ("torch", "onnx", "onnx-int8"), "--prefine-backends")
    if not {"torch", "onnx"} & set(prefine_backends):
        sys.exit("--prefine-backends needs an fp32 backend (torch or onnx) for the headline")
    ort_variants = listed(args.ort_variants, ("fp32", "fused", "int8"), "--ort-variants")
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
    prefine_sides = prefine_models(model, prefine_backends, args.work_dir, args.threads)
    variants = [name.strip() for name in args.hf_variants.split(",") if name.strip()]
    sessions = onnxruntime_sessions(model, args.work_dir, ort_variants, args.threads, args.max_seq_length, args.ort_per_channel, export_dir)
    fast_tokenizer = hf_tokenizer(export_dir) if sessions else None
    classifiers = {}
    for variant in variants:
        attention = variant.split("-", 1)[1] if "-" in variant else ""
        classifiers[variant] = pipeline(
            "text-classification", model=str(export_dir), device="cpu", model_kwargs={"attn_implementation": attention} if attention else {}
        )

    def run_side(side: str, batch_texts: list[str]) -> tuple[float, np.ndarray]:
        # In a `--backend onnx` process PyTorch keeps one thread (the head's) and ONNX Runtime the rest;
        # every other side, prefine's torch path included, runs PyTorch on --threads.
        torch.set_num_threads(1 if side.startswith("prefine onnx") else args.threads)
        if side.startswith("prefine "):
            backend_model = prefine_sides[side.removeprefix("prefine ")]
            return prefine_predict(backend_model, tokenizer, batch_texts, args.batch_size, args.max_seq_length)
        if side.startswith("onnxruntime "):
            return onnxruntime_predict(
                sessions[side.removeprefix("onnxruntime ")], fast_tokenizer, batch_texts, args.batch_size, args.max_seq_length
            )
        variant = side.removeprefix("transformers ")
        return hf_predict(
            classifiers[variant], batch_texts, args.batch_size, args.max_seq_length, sort_by_length=variant.startswith("sorted")
        )

    ours = [f"prefine {backend}" for backend in prefine_sides]
    sides = ours + [f"transformers {variant}" for variant in variants] + [f"onnxruntime {variant}" for variant in sessions]
    int8_sides = {"prefine onnx-int8", "onnxruntime int8"}
    fp32_sides = [side for side in sides if side not in int8_sides]
    our_fp32 = tuple(side for side in ours if side not in int8_sides)
    # Agreement is counted against prefine's first fp32 path (torch unless --prefine-backends leaves it out).
    # (empty only when onnx was the one fp32 backend asked for and onnxruntime is missing)
    reference = our_fp32[0] if our_fp32 else sys.exit("--prefine-backends needs an fp32 backend that can run here (torch)")
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
    agreements = {side: float((predictions[reference] == predictions[side]).mean()) for side in sides}
    accuracies = {side: float((predictions[side] == labels).mean()) for side in sides}
    # fp32 sides must predict what prefine predicts; int8's agreement is reported, not required.
    agreement = min((agreements[side] for side in fp32_sides if side != reference), default=1.0)

    rows, results = [], []
    for side, times in measured.items():
        record = {
            "side": side,
            "examples_per_s": len(texts) / median(times),
            "seconds": times,
            "label_agreement": agreements[side],
            "dev_accuracy": accuracies[side],
        }
        results.append(record)
        rows.append(
            [f"{args.preset} SST-2 dev", side, record["examples_per_s"], f"{100 * agreements[side]:.1f}%", f"{100 * accuracies[side]:.1f}%"]
        )
    fastest_ours = min(our_fp32, key=lambda side: median(measured[side]))
    for side in fp32_sides:
        if side in our_fp32:
            continue
        rows.append(
            [
                f"{args.preset} SST-2 dev",
                f"**speed-up vs {side}**",
                f"**{median(measured[side]) / median(measured[fastest_ours]):.2f}x**",
                "",
                "",
            ]
        )
    int8_text = ""
    if "int8" in sessions:
        int8_text = f", onnxruntime int8: {'per-channel' if args.ort_per_channel else 'per-tensor'} dynamic quantization"
    if "prefine onnx-int8" in measured:
        int8_text += ", prefine onnx-int8: its --backend onnx-int8 (per-channel, reduce_range)"
    conditions = (
        f"{len(texts)} examples, batch {args.batch_size}, median of {args.repeats}, {args.threads} threads{int8_text}; "
        f"speed-up rows are prefine's fastest fp32 path ({fastest_ours}) against each anchor; "
        f"fp32 sides' labels agree with {reference}'s on >= {100 * agreement:.1f}%; "
        "weights are random, so dev accuracy is chance: int8's accuracy cost must be measured on a fine-tuned model"
    )
    header = ["model", "side", "examples/s", "labels as prefine", "dev accuracy"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    rates = {record["side"]: record["examples_per_s"] for record in results}
    has_anchor = len(fp32_sides) > len(our_fp32)
    headline = against_strongest_anchor({side: rates[side] for side in fp32_sides}, "examples/s", our_fp32) if has_anchor else None
    notes = []
    for side in ("prefine onnx-int8", "onnxruntime int8"):
        if side in rates:
            against = ", ".join(f"{rates[side] / rates[ours_side]:.2f}x {ours_side}" for ours_side in our_fp32)
            notes.append(
                f"{side} (not in the headline: another precision) runs at {against} (examples/s) and predicts "
                f"{reference}'s label on {100 * agreements[side]:.1f}% of texts (random weights: accuracy cost not measured here)"
            )
            print(notes[-1])
    record = {
        "benchmark": "inference_throughput",
        "preset": args.preset,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": args.threads,
        "label_agreement": agreement,
        "prefine_backends": list(prefine_sides),
        "onnxruntime": {"variants": list(sessions), "int8_per_channel": args.ort_per_channel} if sessions else None,
        "random_weights": True,
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
    write_results(args.results, "inference_throughput", header, rows, record, args.threads, conditions, headline, more_tables, notes)
    print_json(record)


if __name__ == "__main__":
    main()
