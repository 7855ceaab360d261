"""First steps: the time of each of a run's first training steps, by OpenMP wait policy.

A short run (a test, the quickstart, a 5-step fine-tune) pays whatever its first steps cost. So
every run here is a fresh child process that builds its data and model and trains --steps steps,
timing each step (wall clock and the process's CPU time) and counting the minor page faults it
causes (fresh memory touched).

What the first steps pay on a 2-core machine is mostly waiting: PyTorch's CPU wheels use GNU
OpenMP, whose threads spin at the end of every parallel region before they sleep. With as many
threads as cores, any other runnable process (another run, a test suite, a VM's own start-up
work) takes a core from a spinning team, and a step of thousands of small parallel regions then
runs 10-40x slower, until the scheduler happens to settle. The modes:

  active   the child's environment without OMP_WAIT_POLICY: GNU OpenMP's default (spin, then sleep).
  passive  OMP_WAIT_POLICY=PASSIVE: threads sleep as soon as a region ends.

Cases, all at batch 32, AdamW with clipping at 1.0, as in the training loop:

  pretrain-tiny, pretrain-mini  PretrainingBatches on the built-in corpus at --seq-len, from the
                                first batch of epoch 0 -> BertForPreTraining (model vocabulary
                                30,522, as in pretrain_throughput.py).
  finetune-mini                 SST-2's train.tsv (../shared/data/sst2) -> ClassificationBatches
                                from the start of epoch 0 -> BertForSequenceClassification.

The two modes alternate in order on every repeat; medians over repeats are reported for the
mean step time of steps 1-10, 11-20 and 21-50. Nothing here changes results: the wait policy
decides only what idle threads do (tests/model/test_bert.py checks equal losses and gradients).

    python benchmarks/first_steps.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_WORK_DIR, add_results_argument, markdown_table, median, print_json, write_results  # noqa: E402

CASES = ("pretrain-tiny", "pretrain-mini", "finetune-mini")
MODES = ("active", "passive")
WINDOWS = ((1, 10), (11, 20), (21, 50))
DEFAULT_SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def child(case: str, mode: str, args: argparse.Namespace) -> dict:
    """One fresh run: per-step wall seconds, CPU seconds and minor page faults."""
    import torch
    from common import benchmark_tokenizer, set_threads

    from prefine.model import BertForPreTraining, BertForSequenceClassification, preset_config
    from prefine.training.config import TrainingConfig
    from prefine.training.optim import build_optimizer

    set_threads(args.threads)
    tokenizer, _ = benchmark_tokenizer(args.work_dir, args.vocab_size)
    vocab_size = max(args.model_vocab_size, tokenizer.get_vocab_size(with_added_tokens=True))
    kind, preset = case.split("-")
    torch.manual_seed(args.seed)
    if kind == "pretrain":
        from prefine.data_position import DataPosition
        from prefine.objectives.masked_lm import PretrainingTask
        from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, TokenShards

        batches = PretrainingBatches.from_tokenizer(
            TokenShards.open(args.shard_dir),
            tokenizer,
            PretrainingDataConfig(max_seq_length=args.seq_len),
            seed=args.seed,
            global_batch_size=args.batch_size,
        )
        model = BertForPreTraining(preset_config(preset, vocab_size=vocab_size, max_position_embeddings=max(512, args.seq_len)))
        task = PretrainingTask(batches, [], torch.device("cpu"))
        position = DataPosition(0, 0)

        def next_loss():
            nonlocal position
            batch, position = batches.batch_at(position)
            return task.loss(model, batch)[0]
    else:
        from finetune_throughput import read_sst2

        from prefine.tasks.classification import ClassificationBatches, encode_examples

        texts, labels = read_sst2(args.sst2_dir / "train.tsv")
        examples = encode_examples(texts, None, tokenizer, args.seq_len, labels)
        batches = ClassificationBatches(examples, args.batch_size, pad_id=tokenizer.token_to_id("[PAD]"), seed=args.seed)
        model = BertForSequenceClassification(preset_config(preset, vocab_size=vocab_size), num_labels=2)
        position = batches.start_position()

        def next_loss():
            nonlocal position
            batch, position = batches.batch_at(position, 0, 1)
            return model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["labels"]).loss

    model.train()
    optimizer = build_optimizer(model, TrainingConfig(), torch.device("cpu"))
    wall, cpu, faults = [], [], []
    for _ in range(args.steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        optimizer.zero_grad(set_to_none=True)
        next_loss().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
    return {"case": case, "mode": mode, "wall": wall, "cpu": cpu, "faults": faults}


def window_mean(values: list[float], first: int, last: int) -> float:
    part = values[first - 1 : last]
    return sum(part) / len(part) if part else float("nan")


def run_child(case: str, mode: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        case,
        mode,
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--work-dir",
        str(args.work_dir),
        "--vocab-size",
        str(args.vocab_size),
        "--model-vocab-size",
        str(args.model_vocab_size),
        "--seq-len",
        str(args.seq_len),
        "--batch-size",
        str(args.batch_size),
        "--sst2-dir",
        str(args.sst2_dir),
        "--shard-dir",
        str(args.shard_dir),
    ]
    environment = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    environment.update(OMP_NUM_THREADS=str(args.threads), RAYON_NUM_THREADS=str(args.threads))
    if mode == "passive":
        environment["OMP_WAIT_POLICY"] = "PASSIVE"
    finished = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--steps", type=int, default=50, help="steps per run, all timed (the first steps are the point)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh runs per case and mode, alternating modes; medians are reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="tokenizer and token shards (outside the repo)")
    parser.add_argument("--vocab-size", type=int, default=30522, help="target vocabulary of the benchmark tokenizer")
    parser.add_argument("--model-vocab-size", type=int, default=30522, help="embedding rows of the models (BERT's 30,522)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sst2-dir", type=Path, default=DEFAULT_SST2, help="folder with SST-2's train.tsv (finetune-mini)")
    add_results_argument(parser)
    parser.add_argument("--shard-dir", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.shard_dir = args.shard_dir or args.work_dir / "first-steps-shards"
    if args.child:
        print(json.dumps(child(*args.child, args)))
        return

    cases = list(args.cases)
    if "finetune-mini" in cases and not (args.sst2_dir / "train.tsv").is_file():
        print(f"skipped finetune-mini: SST-2 not found at {args.sst2_dir / 'train.tsv'}; pass --sst2-dir", file=sys.stderr)
        cases.remove("finetune-mini")
    if any(case.startswith("pretrain") for case in cases) and not (args.shard_dir / "meta.json").exists():
        from common import benchmark_tokenizer

        from prefine.corpus.builtin import builtin_pretraining_documents
        from prefine.pretraining_data import build_token_shards

        args.work_dir.mkdir(parents=True, exist_ok=True)
        tokenizer, _ = benchmark_tokenizer(args.work_dir, args.vocab_size)
        build_token_shards(builtin_pretraining_documents(), tokenizer, args.shard_dir)

    runs: dict[tuple[str, str], list[dict]] = {(case, mode): [] for case in cases for mode in MODES}
    for repeat in range(args.repeats):
        for case in cases:
            # Alternate which mode goes first, so slow drifts of a shared machine hit both alike.
            for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
                runs[case, mode].append(run_child(case, mode, args))
                result = runs[case, mode][-1]
                print(
                    f"{case} {mode} repeat {repeat}: "
                    + "  ".join(f"steps {a}-{b} {window_mean(result['wall'], a, b):.3f}s" for a, b in WINDOWS),
                    file=sys.stderr,
                )

    rows, results = [], []
    for (case, mode), measured in runs.items():
        record = {"case": case, "mode": mode}
        for first, last in WINDOWS:
            record[f"wall_{first}_{last}"] = median([window_mean(run["wall"], first, last) for run in measured])
            record[f"cpu_{first}_{last}"] = median([window_mean(run["cpu"], first, last) for run in measured])
            record[f"faults_{first}_{last}"] = median([window_mean(run["faults"], first, last) for run in measured])
        record["step_1"] = median([run["wall"][0] for run in measured])
        record["runs"] = [{key: run[key] for key in ("wall", "cpu", "faults")} for run in measured]
        results.append(record)
        rows.append(
            [
                case,
                mode,
                record["step_1"],
                *(record[f"wall_{a}_{b}"] for a, b in WINDOWS),
                record["wall_1_10"] / record["wall_21_50"],
                *(record[f"cpu_{a}_{b}"] for a, b in WINDOWS),
                *(record[f"faults_{a}_{b}"] for a, b in WINDOWS),
            ]
        )

    import torch

    conditions = (
        f"Batch {args.batch_size}, seq {args.seq_len}, {args.steps} steps per fresh process, median of {args.repeats}, "
        f"{args.threads} threads, model vocabulary {args.model_vocab_size:,}; "
        "seconds per step (wall, then process CPU), minor page faults per step"
    )
    header = [
        "case",
        "OpenMP wait",
        "step 1 s",
        "steps 1-10 s",
        "11-20 s",
        "21-50 s",
        "1-10 / 21-50",
        "CPU 1-10 s",
        "CPU 11-20 s",
        "CPU 21-50 s",
        "faults 1-10",
        "faults 11-20",
        "faults 21-50",
    ]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    record = {
        "benchmark": "first_steps",
        "threads": args.threads,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "repeats": args.repeats,
        "versions": {"torch": torch.__version__},
        "results": results,
    }
    # prefine's own steps under two OpenMP wait policies: no transformers side, so no headline.
    write_results(args.results, "first_steps", header, rows, record, args.threads, conditions)
    print_json(record)


if __name__ == "__main__":
    main()
