"""Fine-tuning throughput: examples/s training sequence classification on SST-2.

Both sides fine-tune the same preset (random init: throughput does not depend on the weights)
with batch --batch-size, AdamW, clipping at 1.0, same threads, same tokenizer, texts truncated
to --max-seq-length:

  prefine       encode_examples -> ClassificationBatches (length-grouped, padded per batch)
                -> BertForSequenceClassification -> prefine's AdamW.
  transformers  tokenizer(texts, truncation) -> random-order batches -> DataCollatorWithPadding
                -> BertForSequenceClassification -> torch.optim.AdamW (a plain training loop).

--hf-variants adds transformers sides tuned as a user would tune them: `grouped` batches the way
the Trainer's `group_by_length` does (megabatches of 50 batches sorted by length, so a batch pads
to similar lengths), `eager`/`sdpa` picks `attn_implementation`, and an optional third part picks
torch's AdamW implementation: `fused` (one kernel per step, torch >= 2.4 on CPU) or `foreach`
(batched per-tensor ops); without it AdamW runs its per-parameter loop, torch's default on CPU. The
default runs the plain loop (`default`) and the tuned variants, so the table shows the old anchor
and the best one, and the headline is against the fastest.

Timed steps are spread over the whole epoch (the same randomly chosen batch indices every
repeat), so neither side is timed only on short or only on long batches. prefine collates the
very examples of the grouped anchors' batches (its own `length_grouped` made them), so the two
sides train on the same work; before, prefine's timed batches came from its own epoch order and
could be longer or shorter by chance. The mean padded length of the timed batches is reported for
both sides.

    python benchmarks/finetune_throughput.py --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_common_arguments,
    add_model_vocab_argument,
    against_strongest_anchor,
    benchmark_tokenizer,
    hf_tokenizer,
    length_grouped,
    markdown_table,
    median,
    model_vocab_size,
    print_json,
    require_bench_dependencies,
    set_threads,
    versions,
    write_results,
)

require_bench_dependencies("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prefine.model import BertForSequenceClassification, preset_config  # noqa: E402
from prefine.tasks.classification import ClassificationBatches, encode_examples  # noqa: E402
from prefine.training.config import TrainingConfig  # noqa: E402
from prefine.training.optim import build_optimizer  # noqa: E402

DEFAULT_SST2 = Path("/work/shared/data/sst2")


def read_sst2(path: Path) -> tuple[list[str], np.ndarray]:
    """(texts, labels) of an SST-2 TSV with a label column and a sentence (or content) column."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    text_column = "sentence" if "sentence" in rows[0] else "content"
    return [row[text_column] for row in rows], np.array([int(row["label"]) for row in rows], dtype=np.int64)


def prefine_run(
    batches: ClassificationBatches, batch_rows: list[np.ndarray], warmup: int, preset: str, vocab_size: int, seed: int
) -> tuple[float, int, float]:
    """Seconds, examples and mean padded length over the batches of `batch_rows` (the first few untimed)."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(preset_config(preset, vocab_size=vocab_size), num_labels=2)
    model.train()
    optimizer = build_optimizer(model, TrainingConfig(), torch.device("cpu"))
    return _timed_loop(
        model,
        optimizer,
        batches.collate,
        batch_rows,
        warmup,
        prefine=True,
    )


# torch.optim.AdamW's implementation a variant's third part names; none: torch's default (the per-parameter loop on CPU).
ADAMW_IMPLEMENTATIONS = {"": {}, "fused": {"fused": True}, "foreach": {"foreach": True}}


def hf_run(
    features: list[dict],
    collator,
    batch_rows: list[np.ndarray],
    warmup: int,
    preset: str,
    vocab_size: int,
    seed: int,
    attention: str,
    adamw: str = "",
) -> tuple[float, int, float]:
    from transformers import BertConfig
    from transformers import BertForSequenceClassification as HFBertForSequenceClassification

    config = preset_config(preset)
    torch.manual_seed(seed)
    hf_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        num_labels=2,
        **({"attn_implementation": attention} if attention else {}),
    )
    model = HFBertForSequenceClassification(hf_config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, **ADAMW_IMPLEMENTATIONS[adamw])
    return _timed_loop(
        model,
        optimizer,
        lambda index: collator([features[row] for row in batch_rows[index]]),
        list(range(len(batch_rows))),
        warmup,
        prefine=False,
    )


def _timed_loop(model, optimizer, make_batch, keys: list[int], warmup: int, prefine: bool) -> tuple[float, int, float]:
    """Train one step per key; the first `warmup` steps are untimed."""
    start, examples, padded = 0.0, 0, []
    for index, key in enumerate(keys):
        if index == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        batch = make_batch(key)
        if index >= warmup:
            examples += batch["input_ids"].shape[0]
            padded.append(batch["input_ids"].shape[1])
        if prefine:
            loss = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["labels"]).loss
        else:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - start, examples, float(np.mean(padded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=20, repeats=3)
    add_model_vocab_argument(parser)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--sst2-dir", type=Path, default=DEFAULT_SST2, help="folder with SST-2's train.tsv")
    parser.add_argument(
        "--hf-variants",
        default="default,grouped-sdpa,grouped-eager,grouped-sdpa-fused,grouped-sdpa-foreach",
        help="transformers sides: default (random batches, default attention), grouped-ATTN[-ADAMW] (length-grouped, "
        "attn_implementation ATTN, torch AdamW fused or foreach)",
    )
    args = parser.parse_args()
    train_file = args.sst2_dir / "train.tsv"
    if not train_file.is_file():
        print(f"skipped: SST-2 not found at {train_file}; pass --sst2-dir pointing at a folder with train.tsv (columns label, sentence)")
        return
    set_threads(args.threads)

    from transformers import DataCollatorWithPadding

    tokenizer, tokenizer_dir = benchmark_tokenizer(args.work_dir, args.vocab_size)
    vocab_size = model_vocab_size(tokenizer, args.model_vocab_size)
    hf_tok = hf_tokenizer(tokenizer_dir)
    texts, labels = read_sst2(train_file)

    examples = encode_examples(texts, None, tokenizer, args.max_seq_length, labels)
    batches = ClassificationBatches(examples, args.batch_size, pad_id=tokenizer.token_to_id("[PAD]"), seed=args.seed)
    features = [dict(encoding, labels=int(label)) for encoding, label in zip(_hf_features(hf_tok, texts, args.max_seq_length), labels)]
    collator = DataCollatorWithPadding(hf_tok)

    rng = np.random.default_rng(args.seed)
    total_steps = args.warmup + args.steps
    full_batches = len(examples) // args.batch_size
    chosen_batches = rng.choice(full_batches, total_steps, replace=False)
    permutation = rng.permutation(len(examples))
    grouped = length_grouped(permutation, examples.lengths, args.batch_size)
    variants = [name.strip() for name in args.hf_variants.split(",") if name.strip()]
    unknown = [name for name in variants if len(name.split("-")) > 2 and name.split("-")[2] not in ADAMW_IMPLEMENTATIONS]
    if unknown:
        sys.exit(f"--hf-variants {', '.join(unknown)}: the third part names torch's AdamW implementation, fused or foreach")
    hf_rows = {
        variant: [
            (grouped if variant.startswith("grouped") else permutation)[i * args.batch_size : (i + 1) * args.batch_size]
            for i in chosen_batches
        ]
        for variant in variants
    }

    sides = ["prefine"] + [f"transformers {variant}" for variant in variants]
    measured: dict[str, list[tuple[float, int, float]]] = {side: [] for side in sides}
    for repeat in range(args.repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            if side == "prefine":
                # The very batches the grouped anchors train on: both sides do the same work.
                grouped_rows = [grouped[i * args.batch_size : (i + 1) * args.batch_size] for i in chosen_batches]
                measured[side].append(prefine_run(batches, grouped_rows, args.warmup, args.preset, vocab_size, args.seed))
            else:
                variant = side.removeprefix("transformers ")
                parts = variant.split("-")
                attention = parts[1] if len(parts) > 1 else ""
                adamw = parts[2] if len(parts) > 2 else ""
                measured[side].append(
                    hf_run(features, collator, hf_rows[variant], args.warmup, args.preset, vocab_size, args.seed, attention, adamw)
                )
        print(f"repeat {repeat}: " + "  ".join(f"{side} {runs[-1][0]:.1f}s" for side, runs in measured.items()), file=sys.stderr)

    rows, results = [], []
    for side, runs in measured.items():
        seconds = median([run[0] for run in runs])
        record = {
            "side": side,
            "examples_per_s": runs[0][1] / seconds,
            "mean_padded_length": runs[0][2],
            "seconds": [run[0] for run in runs],
        }
        results.append(record)
        rows.append([f"{args.preset} SST-2", side, record["examples_per_s"], record["mean_padded_length"]])
    prefine_seconds = median([run[0] for run in measured["prefine"]])
    for side in sides[1:]:
        rows.append(
            [
                f"{args.preset} SST-2",
                f"**speed-up vs {side}**",
                f"**{median([run[0] for run in measured[side]]) / prefine_seconds:.2f}x**",
                "",
            ]
        )
    conditions = (
        f"Batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, median of {args.repeats}, {args.threads} threads, "
        f"mean real length {examples.lengths.mean():.1f}, model vocabulary {vocab_size:,}"
    )
    header = ["model", "side", "examples/s", "mean padded length"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    headline = against_strongest_anchor({record["side"]: record["examples_per_s"] for record in results}, "examples/s")
    record = {
        "benchmark": "finetune_throughput",
        "preset": args.preset,
        "model_vocab_size": vocab_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "versions": versions(),
        "results": results,
        "headline": headline,
    }
    write_results(args.results, "finetune_throughput", header, rows, record, args.threads, conditions, headline)
    print_json(record)


def _hf_features(hf_tok, texts: list[str], max_length: int) -> list[dict]:
    encoded = hf_tok(texts, truncation=True, max_length=max_length)
    return [{key: encoded[key][index] for key in encoded} for index in range(len(texts))]


if __name__ == "__main__":
    main()
