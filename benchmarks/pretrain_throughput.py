"""Pre-training throughput: prefine's training step against transformers' BertForPreTraining.

Both sides train the same preset (fresh random init) on the same instances, built by prefine's
PretrainingBatches from the built-in corpus, for the same number of AdamW steps with gradient
clipping at 1.0, on the same threads:

  prefine       PretrainingBatches.batch_at (collate + dynamic masking, padded to the batch's
                longest sequence) -> BertForPreTraining with the sparse MLM head -> AdamW.
  transformers  the same instances' token ids, padded to --seq-len as run_mlm.py / the BERT
                examples do, masked by DataCollatorForLanguageModeling -> BertForPreTraining
                (dense vocabulary logits at every position) -> torch.optim.AdamW.

Throughput counts real (non-padding) tokens. Model FLOPs are the *useful* FLOPs of a training
step, identical for both sides since the instances are the same:

    FLOPs = 3 x [ sum_i len_i x L x (2 x (4 H^2 + 2 H I) + 4 H len_i)    # encoder matmuls + attention
                  + masked x 2 x (H^2 + H V) ]                          # MLM head at masked positions

(3 = forward + backward; len_i = real tokens of sequence i; L layers, H hidden, I feed-forward,
V vocabulary; embeddings, pooler and NSP are negligible). MFU is FLOP/s over the measured
fp32 matmul peak of the same threads (best of a 2048^3 torch.mm).

    python benchmarks/pretrain_throughput.py --presets tiny mini small --steps 10 --repeats 3

`--with-electra` also times prefine's ELECTRA step (generator + discriminator, issue 16) on the
same batches, interleaved with the other two, and reports its cost against prefine's MLM step.
transformers has no ELECTRA pre-training to compare with; its useful FLOPs are not computed (the
MFU column counts the BERT formula only and is left blank for it).

    python benchmarks/pretrain_throughput.py --presets mini --with-electra --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

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

import torch  # noqa: E402

from prefine.data_position import DataPosition  # noqa: E402
from prefine.model import BertForPreTraining, encoder_flops_per_token, preset_config  # noqa: E402
from prefine.model.electra import ElectraObjectiveConfig, ElectraPreTrainingModel, generator_config  # noqa: E402
from prefine.objectives.electra import ElectraPretrainingTask  # noqa: E402
from prefine.objectives.masked_lm import PretrainingTask  # noqa: E402
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, build_token_shards  # noqa: E402
from prefine.training.config import TrainingConfig  # noqa: E402
from prefine.training.optim import build_optimizer  # noqa: E402

IGNORE = -100


def useful_training_flops(batch: dict, config) -> float:
    """3 x forward FLOPs of the real tokens (formula in the module docstring)."""
    lengths = batch["attention_mask"].sum(dim=1).double()
    encoder = float(sum(length * encoder_flops_per_token(config, length) for length in lengths.tolist()))
    masked = int((batch["mlm_labels"] != IGNORE).sum())
    head = masked * 2 * (config.hidden_size**2 + config.hidden_size * config.vocab_size)
    return 3 * (encoder + head)


def hf_examples(batch: dict, seq_len: int, special_ids: set[int], pad_id: int) -> list[dict]:
    """prefine's instances as unmasked, pre-padded examples for DataCollatorForLanguageModeling."""
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


def prefine_run(
    batches: PretrainingBatches, preset: str, vocab_size: int, seq_len: int, warmup: int, steps: int, seed: int, electra: bool = False
) -> float:
    torch.manual_seed(seed)
    config = preset_config(preset, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len))
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
    preset: str,
    vocab_size: int,
    seq_len: int,
    warmup: int,
    steps: int,
    seed: int,
    attention: str,
) -> float:
    from transformers import BertConfig
    from transformers import BertForPreTraining as HFBertForPreTraining

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max(512, seq_len),
        **_preset_sizes(preset),
        **({"attn_implementation": attention} if attention else {}),
    )
    model = HFBertForPreTraining(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
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


def _preset_sizes(preset: str) -> dict:
    config = preset_config(preset)
    return {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=10, repeats=3)
    add_model_vocab_argument(parser)
    parser.add_argument("--presets", nargs="+", default=["tiny", "mini", "small"])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--with-mini-512", action="store_true", help="also run mini at sequence length 512 (slow)")
    parser.add_argument("--hf-attention", default="", help="transformers attn_implementation (default: transformers' own default, sdpa)")
    parser.add_argument("--with-electra", action="store_true", help="also time prefine's ELECTRA step on the same batches")
    args = parser.parse_args()
    set_threads(args.threads)

    from transformers import DataCollatorForLanguageModeling

    tokenizer, tokenizer_dir = benchmark_tokenizer(args.work_dir, args.vocab_size)
    hf_tok = hf_tokenizer(tokenizer_dir)
    vocab_size = model_vocab_size(tokenizer, args.model_vocab_size)
    special_ids = {hf_tok.pad_token_id, hf_tok.cls_token_id, hf_tok.sep_token_id}
    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15)

    from prefine.corpus.builtin import builtin_pretraining_documents

    shard_dir = Path(tempfile.mkdtemp(prefix="shards-", dir=args.work_dir))
    shards = build_token_shards(builtin_pretraining_documents(), tokenizer, shard_dir)
    peak = matmul_peak_flops(args.threads)
    print(f"measured fp32 matmul peak on {args.threads} threads: {peak / 1e9:.0f} GFLOP/s", file=sys.stderr)

    runs = [(preset, args.seq_len) for preset in args.presets]
    if args.with_mini_512:
        runs.append(("mini", 512))
    rows, results, headlines = [], [], {}
    for preset, seq_len in runs:
        config = preset_config(preset, vocab_size=vocab_size)
        batches = PretrainingBatches.from_tokenizer(
            shards, tokenizer, PretrainingDataConfig(max_seq_length=seq_len), seed=args.seed, global_batch_size=args.batch_size
        )
        position, timed = DataPosition(0, 0), []
        for _ in range(args.warmup + args.steps):
            batch, position = batches.batch_at(position)
            timed.append(batch)
        measured = timed[args.warmup :]
        real_tokens = sum(int(batch["attention_mask"].sum()) for batch in measured)
        sequences = args.batch_size * args.steps
        flops = sum(useful_training_flops(batch, config) for batch in measured)
        example_batches = [hf_examples(batch, seq_len, special_ids, hf_tok.pad_token_id) for batch in timed]
        padding = 1 - real_tokens / (sequences * seq_len)

        prefine_times, hf_times, electra_times = [], [], []
        sides = ["prefine", "hf"] + (["electra"] if args.with_electra else [])
        for repeat in range(args.repeats):
            # Rotate which side goes first, so slow drifts of a shared machine hit all alike.
            for side in sides[repeat % len(sides) :] + sides[: repeat % len(sides)]:
                if side == "prefine":
                    prefine_times.append(prefine_run(batches, preset, vocab_size, seq_len, args.warmup, args.steps, args.seed))
                elif side == "electra":
                    electra_times.append(
                        prefine_run(batches, preset, vocab_size, seq_len, args.warmup, args.steps, args.seed, electra=True)
                    )
                else:
                    hf_times.append(
                        hf_run(
                            example_batches, collator, preset, vocab_size, seq_len, args.warmup, args.steps, args.seed, args.hf_attention
                        )
                    )
            electra_note = f" prefine electra {electra_times[-1]:.1f}s" if electra_times else ""
            print(
                f"{preset}@{seq_len} repeat {repeat}: prefine {prefine_times[-1]:.1f}s transformers {hf_times[-1]:.1f}s{electra_note}",
                file=sys.stderr,
            )
        if electra_times:
            seconds = median(electra_times)
            results.append(
                {
                    "preset": preset,
                    "seq_len": seq_len,
                    "side": "prefine electra",
                    "real_tokens_per_s": real_tokens / seconds,
                    "sequences_per_s": sequences / seconds,
                    "seconds": electra_times,
                    "relative_to_prefine_mlm": median(prefine_times) / seconds,
                }
            )
            rows.append(
                [
                    f"{preset} @{seq_len}",
                    "prefine electra",
                    real_tokens / seconds,
                    sequences / seconds,
                    "",
                    "",
                ]
            )
            rows.append(
                [
                    f"{preset} @{seq_len}",
                    "**electra / mlm**",
                    f"**{median(prefine_times) / seconds:.2f}x**",
                    "",
                    "",
                    "(prefine's own steps)",
                ]
            )
        for side, times in (("prefine", prefine_times), ("transformers", hf_times)):
            seconds = median(times)
            record = {
                "preset": preset,
                "seq_len": seq_len,
                "side": side,
                "real_tokens_per_s": real_tokens / seconds,
                "sequences_per_s": sequences / seconds,
                "gflops_per_s": flops / seconds / 1e9,
                "mfu": flops / seconds / peak,
                "seconds": times,
            }
            results.append(record)
            rows.append(
                [
                    f"{preset} @{seq_len}",
                    side,
                    record["real_tokens_per_s"],
                    record["sequences_per_s"],
                    record["gflops_per_s"],
                    f"{100 * record['mfu']:.0f}%",
                ]
            )
        speedup = median(hf_times) / median(prefine_times)
        # prefine against transformers (the one anchor side) on this model; the ELECTRA step is prefine's own.
        headline = against_strongest_anchor(
            {side: real_tokens / median(times) for side, times in (("prefine", prefine_times), ("transformers", hf_times))},
            "real tokens/s",
        )
        headline["text"] += f" ({preset} @{seq_len})"
        headlines[f"{preset} @{seq_len}"] = headline
        rows.append(
            [f"{preset} @{seq_len}", "**speed-up**", f"**{speedup:.2f}x**", "", "", f"(padding at {seq_len}: {100 * padding:.0f}%)"]
        )

    conditions = (
        f"Batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, median of {args.repeats}, "
        f"{args.threads} threads, matmul peak {peak / 1e9:.0f} GFLOP/s, model vocabulary {vocab_size:,}"
    )
    header = ["model", "side", "real tokens/s", "sequences/s", "useful GFLOP/s", "MFU"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    record = {
        "benchmark": "pretrain_throughput",
        "peak_flops": peak,
        "model_vocab_size": vocab_size,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "versions": versions(),
        "results": results,
        "headlines": headlines,
    }
    # The results file's headline is the first model measured (the others are in the table and in "headlines").
    headline = next(iter(headlines.values()), None)
    write_results(args.results, "pretrain_throughput", header, rows, record, args.threads, conditions, headline)
    print_json(record)


if __name__ == "__main__":
    main()
