"""Pre-training throughput: each side's default pre-training recipe at the same tokens per step.

All sides train the same preset (fresh random init) on text of the built-in corpus, with the same
WordPiece tokenizer and model vocabulary, AdamW, gradient clipping at 1.0, on the same threads and
in the same process (so under the same OMP_WAIT_POLICY: prefine's PASSIVE, set before torch loads
unless the environment already sets one). The main table compares the default recipes:

  prefine       what `prefine pretrain` trains by default: objective `mlm`, whole sentences packed
                into rows of up to --seq-len tokens (PretrainingBatches.batch_at: collation +
                dynamic 15% masking, padded to the batch's longest row), --batch-size rows a step,
                pre-training's model defaults (no dropout, untied MLM head) -> BertForPreTraining
                (sparse MLM head: vocabulary logits only at masked positions) -> build_optimizer's
                fused AdamW.
  transformers  run_mlm.py's default recipe: the corpus one sentence per line, tokenized with
                special tokens in batches of 1,000 lines and grouped into full --seq-len blocks
                (run_mlm's group_texts: concatenate, cut, drop the remainder; no padding, no NSP),
                shuffled, DataCollatorForLanguageModeling(mlm_probability=0.15) -> BertForMaskedLM
                (same sizes and dropout as prefine's side, transformers' default tied decoder; it
                computes vocabulary logits at every position and takes the loss where labels are
                set) -> torch.optim.AdamW. The number of blocks a step is prefine's real tokens per
                step over --seq-len, rounded, so both sides train on the same tokens per step.
                --hf-variants runs it once per ATTN-ADAMW pair: attn_implementation sdpa or eager,
                torch's AdamW fused (one kernel) or foreach (batched per-tensor ops). The headline
                is against the fastest variant, which the table names.

The secondary table (`--no-pairs` skips it) is the comparison this script made before issue 35:
BERT's mlm+nsp sentence pairs built by prefine's PretrainingBatches, prefine on them (padded to the
batch's longest, BERT's dropout of 0.1) against transformers' BertForPreTraining on the same
instances padded to --seq-len (run_mlm.py --pad_to_max_length) with dense vocabulary logits at
every position, default attention (--hf-attention) and torch's default AdamW.

Throughput counts real (non-padding) tokens. Model FLOPs are the *useful* FLOPs of a training
step, computed from each side's own batches:

    FLOPs = 3 x [ sum_i len_i x L x (2 x (4 H^2 + 2 H I) + 4 H len_i)    # encoder matmuls + attention
                  + masked x 2 x (H^2 + H V) ]                          # MLM head at masked positions

(3 = forward + backward; len_i = real tokens of sequence i; L layers, H hidden, I feed-forward,
V vocabulary; embeddings, pooler and NSP are negligible; transformers' masked count is that of one
collation of its blocks). MFU is FLOP/s over the measured fp32 matmul peak of the same threads
(best of a 2048^3 torch.mm).

    python benchmarks/pretrain_throughput.py --presets tiny mini small --steps 10 --repeats 3

`--with-electra` also times prefine's ELECTRA step (generator + discriminator, issue 16) on the
packed batches, interleaved with the others, and reports its cost against prefine's MLM step.
transformers has no ELECTRA pre-training to compare with; its useful FLOPs are not computed (the
MFU column counts the BERT formula only and is left blank for it).

    python benchmarks/pretrain_throughput.py --presets mini --with-electra --no-pairs --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

# prefine sets this when it is imported (prefine/__init__.py), but common imports torch, and with
# it OpenMP, first: set it here so that every side runs as `prefine pretrain` would.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_common_arguments,
    add_model_vocab_argument,
    against_strongest_anchor,
    benchmark_tokenizer,
    hf_tokenizer,
    markdown_table,
    matmul_peak_flops,
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

from prefine.data_position import DataPosition  # noqa: E402
from prefine.model import BertForPreTraining, encoder_flops_per_token, preset_config  # noqa: E402
from prefine.model.electra import ElectraObjectiveConfig, ElectraPreTrainingModel, generator_config  # noqa: E402
from prefine.objectives.electra import ElectraPretrainingTask  # noqa: E402
from prefine.objectives.masked_lm import PretrainingTask  # noqa: E402
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, build_token_shards  # noqa: E402
from prefine.recipes.pretrain import PRETRAIN_DATA_DEFAULTS, new_model_settings  # noqa: E402
from prefine.training.config import TrainingConfig  # noqa: E402
from prefine.training.optim import build_optimizer  # noqa: E402

IGNORE = -100

# torch.optim.AdamW's implementation a variant's second part names.
ADAMW_IMPLEMENTATIONS = {"fused": {"fused": True}, "foreach": {"foreach": True}}
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
# datasets.map's default batch: run_mlm.py tokenizes and groups this many lines at a time, so each
# 1,000 lines drop their own remainder.
MAP_BATCH_LINES = 1000


def useful_training_flops(attention_mask: torch.Tensor, mlm_labels: torch.Tensor, config) -> float:
    """3 x forward FLOPs of the real tokens (formula in the module docstring)."""
    lengths = attention_mask.sum(dim=1).double()
    encoder = float(sum(length * encoder_flops_per_token(config, length) for length in lengths.tolist()))
    masked = int((mlm_labels != IGNORE).sum())
    head = masked * 2 * (config.hidden_size**2 + config.hidden_size * config.vocab_size)
    return 3 * (encoder + head)


def grouped_blocks(hf_tok, lines: list[str], seq_len: int, seed: int) -> list[dict]:
    """run_mlm.py's tokenize + group_texts over `lines`, in its batches of 1,000 lines, shuffled as the Trainer's sampler does."""
    blocks = []
    for first in range(0, len(lines), MAP_BATCH_LINES):
        encoded = hf_tok(lines[first : first + MAP_BATCH_LINES], return_special_tokens_mask=True)
        concatenated = {key: list(chain(*encoded[key])) for key in encoded.keys()}
        total = len(concatenated["input_ids"]) // seq_len * seq_len
        blocks += [{key: values[start : start + seq_len] for key, values in concatenated.items()} for start in range(0, total, seq_len)]
    order = np.random.default_rng(seed).permutation(len(blocks))
    return [blocks[index] for index in order]


def hf_pair_examples(batch: dict, seq_len: int, special_ids: set[int], pad_id: int) -> list[dict]:
    """prefine's mlm+nsp instances as unmasked, pre-padded examples for DataCollatorForLanguageModeling."""
    original = torch.where(batch["mlm_labels"] != IGNORE, batch["mlm_labels"], batch["input_ids"])
    examples = []
    for row in range(original.shape[0]):
        length = int(batch["attention_mask"][row].sum())
        ids = original[row, :length].tolist() + [pad_id] * (seq_len - length)
        types = batch["token_type_ids"][row, :length].tolist() + [0] * (seq_len - length)
        nsp = int(batch["next_sentence_label"][row])
        examples.append(
            {
                "input_ids": ids,
                "token_type_ids": types,
                "attention_mask": [1] * length + [0] * (seq_len - length),
                "special_tokens_mask": [int(token in special_ids) for token in ids],
                "next_sentence_label": nsp if nsp >= 0 else IGNORE,
            }
        )
    return examples


def prefine_config(preset: str, vocab_size: int, seq_len: int, data: PretrainingDataConfig):
    """The encoder config `prefine pretrain --preset PRESET` builds for a new model of `data.objective`."""
    return preset_config(preset, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len), **new_model_settings({}, data))


def prefine_run(batches: PretrainingBatches, config, warmup: int, steps: int, seed: int, electra: bool = False) -> float:
    torch.manual_seed(seed)
    if electra:
        objective = ElectraObjectiveConfig()
        model = ElectraPreTrainingModel(config, generator_config(config, objective.generator_size), objective)
        task = ElectraPretrainingTask(batches, [], torch.device("cpu"), objective)
    else:
        model = BertForPreTraining(config)
        task = PretrainingTask(batches, [], torch.device("cpu"))
    model.train()
    optimizer = build_optimizer(model, TrainingConfig(), torch.device("cpu"))
    position = DataPosition(0, 0)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        batch, position = batches.batch_at(position)
        loss, _ = task.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - start


def hf_run(
    example_batches: list[list[dict]],
    collator,
    model_class: str,
    config,
    warmup: int,
    steps: int,
    seed: int,
    attention: str,
    adamw: str,
) -> float:
    """A plain run_mlm-style loop (collate in the loop, as the Trainer's DataLoader does with no workers)."""
    import transformers

    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size,
        max_position_embeddings=config.max_position_embeddings,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        **({"attn_implementation": attention} if attention else {}),
    )
    model = getattr(transformers, model_class)(hf_config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, **ADAMW_IMPLEMENTATIONS.get(adamw, {}))
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        batch = collator(example_batches[step])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - start


def parse_variants(text: str) -> list[str]:
    variants = [name.strip() for name in text.split(",") if name.strip()]
    for name in variants:
        parts = name.split("-")
        if len(parts) != 2 or parts[0] not in ATTENTION_IMPLEMENTATIONS or parts[1] not in ADAMW_IMPLEMENTATIONS:
            sys.exit(f"--hf-variants {name}: name ATTN-ADAMW, ATTN one of {'/'.join(ATTENTION_IMPLEMENTATIONS)}, ADAMW fused or foreach")
    if not variants:
        sys.exit("--hf-variants: name at least one transformers variant")
    return variants


def side_record(preset: str, seq_len: int, side: str, times: list[float], tokens: int, sequences: int, flops: float, peak: float):
    seconds = median(times)
    return {
        "preset": preset,
        "seq_len": seq_len,
        "side": side,
        "real_tokens_per_s": tokens / seconds,
        "sequences_per_s": sequences / seconds,
        "gflops_per_s": flops / seconds / 1e9,
        "mfu": flops / seconds / peak,
        "seconds": times,
    }


def table_row(record: dict) -> list:
    return [
        f"{record['preset']} @{record['seq_len']}",
        record["side"],
        record["real_tokens_per_s"],
        record["sequences_per_s"],
        record["gflops_per_s"],
        f"{100 * record['mfu']:.0f}%",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=10, repeats=3)
    add_model_vocab_argument(parser)
    parser.add_argument("--presets", nargs="+", default=["tiny", "mini", "small"])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="prefine's rows a step (transformers gets the same tokens a step)")
    parser.add_argument("--with-mini-512", action="store_true", help="also run mini at sequence length 512 (slow)")
    parser.add_argument(
        "--hf-variants",
        default="sdpa-fused,sdpa-foreach,eager-fused,eager-foreach",
        help="run_mlm.py sides, ATTN-ADAMW each: attn_implementation sdpa or eager, torch AdamW fused or foreach",
    )
    parser.add_argument("--no-pairs", action="store_true", help="skip the secondary table (padded mlm+nsp pairs)")
    parser.add_argument(
        "--hf-attention", default="", help="attn_implementation of the padded-pairs transformers side (default: transformers' own, sdpa)"
    )
    parser.add_argument("--with-electra", action="store_true", help="also time prefine's ELECTRA step on the packed batches")
    args = parser.parse_args()
    variants = parse_variants(args.hf_variants)
    set_threads(args.threads)

    from transformers import DataCollatorForLanguageModeling

    tokenizer, tokenizer_dir = benchmark_tokenizer(args.work_dir, args.vocab_size)
    hf_tok = hf_tokenizer(tokenizer_dir)
    vocab_size = model_vocab_size(tokenizer, args.model_vocab_size)
    special_ids = {hf_tok.pad_token_id, hf_tok.cls_token_id, hf_tok.sep_token_id}
    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15)

    from prefine.corpus.builtin import builtin_pretraining_documents

    documents = list(builtin_pretraining_documents())
    # The corpus as run_mlm.py reads a text file: one sentence a line (blank lines between documents skipped).
    lines = [sentence for document in documents for sentence in document]
    shard_dir = Path(tempfile.mkdtemp(prefix="shards-", dir=args.work_dir))
    shards = build_token_shards(iter(documents), tokenizer, shard_dir)
    peak = matmul_peak_flops(args.threads)
    print(f"measured fp32 matmul peak on {args.threads} threads: {peak / 1e9:.0f} GFLOP/s", file=sys.stderr)

    runs = [(preset, args.seq_len) for preset in args.presets]
    if args.with_mini_512:
        runs.append(("mini", 512))
    total_steps = args.warmup + args.steps
    rows, pair_rows, results, headlines, fastest_anchors, step_notes = [], [], [], {}, {}, []
    block_cache: dict[int, list[dict]] = {}
    for preset, seq_len in runs:
        model_name = f"{preset} @{seq_len}"
        # prefine's side: `prefine pretrain`'s default objective and data layout at this length.
        packed_data = dataclasses.replace(PRETRAIN_DATA_DEFAULTS, max_seq_length=seq_len)
        packed = PretrainingBatches.from_tokenizer(shards, tokenizer, packed_data, seed=args.seed, global_batch_size=args.batch_size)
        packed_config = prefine_config(preset, vocab_size, seq_len, packed_data)
        position, packed_batches = DataPosition(0, 0), []
        for _ in range(total_steps):
            batch, position = packed.batch_at(position)
            packed_batches.append(batch)
        packed_tokens = sum(int(batch["attention_mask"].sum()) for batch in packed_batches[args.warmup :])
        packed_flops = sum(
            useful_training_flops(b["attention_mask"], b["mlm_labels"], packed_config) for b in packed_batches[args.warmup :]
        )

        # transformers' side: run_mlm.py's grouped blocks, as many a step as give prefine's real tokens a step.
        if seq_len not in block_cache:
            block_cache[seq_len] = grouped_blocks(hf_tok, lines, seq_len, args.seed)
        blocks_per_step = max(1, round(packed_tokens / args.steps / seq_len))
        blocks = block_cache[seq_len]
        if len(blocks) < total_steps * blocks_per_step:
            sys.exit(f"the corpus gives {len(blocks)} blocks of {seq_len}; {total_steps * blocks_per_step} are needed: lower --steps")
        block_batches = [blocks[step * blocks_per_step : (step + 1) * blocks_per_step] for step in range(total_steps)]
        grouped_tokens = args.steps * blocks_per_step * seq_len
        torch.manual_seed(args.seed)
        hf_flops = 0.0
        for examples in block_batches[args.warmup :]:
            collated = collator(examples)
            hf_flops += useful_training_flops(torch.ones_like(collated["input_ids"]), collated["labels"], packed_config)
        step_notes.append(
            f"{model_name}: prefine {packed_tokens / args.steps:,.0f} real tokens a step in {args.batch_size} packed rows; "
            f"transformers {blocks_per_step} blocks of {seq_len} = {blocks_per_step * seq_len:,} tokens a step"
        )

        sides = ["prefine"] + [f"transformers {variant}" for variant in variants]
        if not args.no_pairs:
            pair_data = PretrainingDataConfig(max_seq_length=seq_len, objective="mlm+nsp")
            pairs = PretrainingBatches.from_tokenizer(shards, tokenizer, pair_data, seed=args.seed, global_batch_size=args.batch_size)
            # The comparison as it stood before issue 35: BERT's config (dropout 0.1) on both sides.
            pair_config = preset_config(preset, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len))
            position, pair_batches = DataPosition(0, 0), []
            for _ in range(total_steps):
                batch, position = pairs.batch_at(position)
                pair_batches.append(batch)
            pair_tokens = sum(int(batch["attention_mask"].sum()) for batch in pair_batches[args.warmup :])
            pair_flops = sum(useful_training_flops(b["attention_mask"], b["mlm_labels"], pair_config) for b in pair_batches[args.warmup :])
            pair_examples = [hf_pair_examples(batch, seq_len, special_ids, hf_tok.pad_token_id) for batch in pair_batches]
            pair_padding = 1 - pair_tokens / (args.batch_size * args.steps * seq_len)
            sides += ["prefine mlm+nsp", "transformers padded pairs"]
        if args.with_electra:
            sides.append("prefine electra")
            electra_config = preset_config(
                preset,
                vocab_size=vocab_size,
                max_position_embeddings=max(512, seq_len),
                **new_model_settings({}, dataclasses.replace(PRETRAIN_DATA_DEFAULTS, objective="electra", max_seq_length=seq_len)),
            )

        times: dict[str, list[float]] = {side: [] for side in sides}
        for repeat in range(args.repeats):
            # Rotate which side goes first, so slow drifts of a shared machine hit all alike.
            shift = repeat % len(sides)
            for side in sides[shift:] + sides[:shift]:
                if side == "prefine":
                    seconds = prefine_run(packed, packed_config, args.warmup, args.steps, args.seed)
                elif side == "prefine electra":
                    seconds = prefine_run(packed, electra_config, args.warmup, args.steps, args.seed, electra=True)
                elif side == "prefine mlm+nsp":
                    seconds = prefine_run(pairs, pair_config, args.warmup, args.steps, args.seed)
                elif side == "transformers padded pairs":
                    seconds = hf_run(
                        pair_examples,
                        collator,
                        "BertForPreTraining",
                        pair_config,
                        args.warmup,
                        args.steps,
                        args.seed,
                        args.hf_attention,
                        "",
                    )
                else:
                    attention, adamw = side.removeprefix("transformers ").split("-")
                    seconds = hf_run(
                        block_batches, collator, "BertForMaskedLM", packed_config, args.warmup, args.steps, args.seed, attention, adamw
                    )
                times[side].append(seconds)
            print(
                f"{model_name} repeat {repeat}: " + "  ".join(f"{side} {runs_[-1]:.1f}s" for side, runs_ in times.items()), file=sys.stderr
            )

        main_records = [
            side_record(preset, seq_len, "prefine", times["prefine"], packed_tokens, args.batch_size * args.steps, packed_flops, peak)
        ]
        main_records += [
            side_record(preset, seq_len, side, times[side], grouped_tokens, blocks_per_step * args.steps, hf_flops, peak)
            for side in sides
            if side.startswith("transformers ") and side != "transformers padded pairs"
        ]
        results += main_records
        rows += [table_row(record) for record in main_records]
        headline = against_strongest_anchor({record["side"]: record["real_tokens_per_s"] for record in main_records}, "real tokens/s")
        fastest_anchors[model_name] = headline["anchor"]
        headline["text"] += f" ({model_name}, packed mlm against run_mlm.py's grouped blocks)"
        headlines[model_name] = headline
        rows.append([model_name, "**speed-up**", f"**{headline['ratio']:.2f}x**", "", "", f"vs {headline['anchor']}, the fastest anchor"])
        if args.with_electra:
            electra = side_record(
                preset, seq_len, "prefine electra", times["prefine electra"], packed_tokens, args.batch_size * args.steps, 0.0, peak
            )
            electra["relative_to_prefine_mlm"] = median(times["prefine"]) / median(times["prefine electra"])
            results.append(electra)
            rows.append([model_name, "prefine electra", electra["real_tokens_per_s"], electra["sequences_per_s"], "", ""])
            rows.append(
                [model_name, "**electra / mlm**", f"**{electra['relative_to_prefine_mlm']:.2f}x**", "", "", "(prefine's own steps)"]
            )
        if not args.no_pairs:
            pair_records = [
                side_record(preset, seq_len, side, times[side], pair_tokens, args.batch_size * args.steps, pair_flops, peak)
                for side in ("prefine mlm+nsp", "transformers padded pairs")
            ]
            for record in pair_records:
                record["table"] = "padded pairs"
            results += pair_records
            pair_rows += [table_row(record) for record in pair_records]
            speedup = median(times["transformers padded pairs"]) / median(times["prefine mlm+nsp"])
            pair_rows.append(
                [model_name, "**speed-up**", f"**{speedup:.2f}x**", "", "", f"(padding at {seq_len}: {100 * pair_padding:.0f}%)"]
            )

    wait_policy = os.environ.get("OMP_WAIT_POLICY", "")
    conditions = (
        f"prefine pretrain's default (packed mlm) against run_mlm.py's default (grouped blocks, BertForMaskedLM), the same tokens a step; "
        f"prefine batch {args.batch_size} rows, {args.steps} timed steps after {args.warmup} warm-up, median of {args.repeats}, "
        f"{args.threads} threads, OMP_WAIT_POLICY={wait_policy}, matmul peak {peak / 1e9:.0f} GFLOP/s, model vocabulary {vocab_size:,}"
    )
    header = ["model", "side", "real tokens/s", "sequences/s", "useful GFLOP/s", "MFU"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    notes = step_notes + [f"{name}: fastest transformers variant {anchor}" for name, anchor in fastest_anchors.items()]
    print("\n" + "\n".join(notes))
    more_tables = []
    if pair_rows:
        pair_conditions = (
            f"Secondary: BERT's mlm+nsp pairs, the same instances on both sides; transformers' BertForPreTraining on them padded to "
            f"--seq-len, default attention{f' ({args.hf_attention})' if args.hf_attention else ''}, torch's default AdamW; "
            f"dropout 0.1 on both sides; batch {args.batch_size}"
        )
        print(f"\n{pair_conditions}\n")
        print(markdown_table(header, pair_rows))
        more_tables.append((pair_conditions, header, pair_rows))
    record = {
        "benchmark": "pretrain_throughput",
        "peak_flops": peak,
        "model_vocab_size": vocab_size,
        "threads": args.threads,
        "omp_wait_policy": wait_policy,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "hf_variants": variants,
        "fastest_anchors": fastest_anchors,
        "versions": versions(),
        "results": results,
        "headlines": headlines,
    }
    # The results file's headline is the first model measured (the others are in the table and in "headlines").
    headline = next(iter(headlines.values()), None)
    write_results(args.results, "pretrain_throughput", header, rows, record, args.threads, conditions, headline, more_tables, notes)
    print_json(record)


if __name__ == "__main__":
    main()
