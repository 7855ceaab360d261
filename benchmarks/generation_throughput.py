"""Generation throughput: generated tokens/s decoding, and training examples/s, prefine against transformers.

One random-init encoder-decoder of --preset (encoder and decoder of that size, cross-attention
in every decoder block) is saved as a prefine generation checkpoint and exported with
`prefine export`; transformers loads the export with `EncoderDecoderModel.from_pretrained`, so
both sides run the same weights on the same token ids, with the same threads:

  decoding   prefine  `prefine.generation.generate` (KV cache, cross-attention K/V once, finished rows dropped)
             transformers  `EncoderDecoderModel.generate`, in each of the --hf-decoding-variants below;
             each row's transformers number and speed-up are against that row's fastest variant.
             greedy and beam search (--beams), at batch 1 and --batch-size, on the docstring bodies of
             the built-in generation task (cut to --max-source-length). Every input generates exactly
             --new-tokens tokens on both sides (min_new_tokens = max_new_tokens), so tokens/s compares
             the same work; it counts output tokens per input, not per beam.
  training   prefine  `GenerationBatches` (length-grouped, as `prefine finetune` trains) -> `BertEncoderDecoder`
                      (unpadded encoder, loss at labelled target positions only) -> prefine's AdamW
             transformers  the same pool of (body, summary) pairs, padded per batch (a plain loop, like
                      DataCollatorForSeq2Seq) -> `EncoderDecoderModel(labels=...)` -> torch.optim.AdamW,
                      in each of the --hf-variants below; the training headline is against the fastest.

Both transformers sides run as a user tuning them would run them, measured rather than assumed.

Decoding: --hf-decoding-variants names `ATTN[-static]` sides. ATTN is the `attn_implementation` passed
to `EncoderDecoderModel.from_pretrained` (`sdpa` or `eager`, for the encoder and the decoder's self- and
cross-attention alike; the attention each side actually ran is recorded); `-static` passes
`cache_implementation="static"` to generate() (a preallocated StaticCache for the decoder's
self-attention and one sized to the source for its cross-attention) instead of its default
DynamicCache. On CPU, generate() runs the static cache eagerly: it compiles the decoder step on its
own only on accelerators, and a torch.compile'd variant is left out (its compile time on a CPU runner
would dwarf a run of this size). `default` is the one configuration this benchmark used to run alone
(`from_pretrained`'s own attention choice, sdpa here, and generate()'s default cache; not run unless
named: it is the `sdpa` variant). All four variants run without errors with transformers 5.25.0 on
CPU, greedy and beam search alike. Every variant decodes the same inputs in the same alternating
repeats; the greedy and beam outputs of every variant are compared with prefine's token for token
(the main table's agreement is the fastest variant's, the variants table has each one's).

Training: --hf-variants names `grouped-ATTN[-ADAMW]` sides. `grouped` batches the pool the way the
Trainer's `group_by_length` does (sorted by source length into batches, the batch order shuffled with
--seed, the batch holding the longest source first, as prefine's batches and LengthGroupedSampler do),
ATTN is the `attn_implementation` as above, and ADAMW picks torch's AdamW implementation: `fused` (one
kernel per step) or `foreach` (batched per-tensor ops); without it AdamW runs its per-parameter loop,
torch's default on CPU. `default` is the plain loop this benchmark used to run alone: a seeded random
order, `from_pretrained`'s own attention choice and AdamW's defaults (not run unless named: its random
batches pad to about --max-source-length). Every variant trains the same pool and the same number of
timed steps.

The machine these numbers come from is usually shared: medians of alternating repeats.

    python benchmarks/generation_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_common_arguments,
    against_strongest_anchor,
    benchmark_tokenizer,
    length_grouped,
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

from prefine.checkpoint import TOKENIZER_DIR, save_checkpoint  # noqa: E402
from prefine.corpus.builtin_generation import builtin_generation_task  # noqa: E402
from prefine.data_position import DataPosition  # noqa: E402
from prefine.generation.decoding import DecodingConfig, SpecialIds, generate  # noqa: E402
from prefine.model import preset_config  # noqa: E402
from prefine.model.encoder_decoder import BertEncoderDecoder  # noqa: E402
from prefine.recipes.export import export_hf  # noqa: E402
from prefine.tasks.classification import encode_examples  # noqa: E402
from prefine.tasks.generation import EncodedPairs, GenerationBatches, collate_pairs, special_ids  # noqa: E402
from prefine.tokenizer import save_tokenizer  # noqa: E402
from prefine.training.config import TrainingConfig  # noqa: E402
from prefine.training.optim import build_optimizer  # noqa: E402


def exported_model(tokenizer, work_dir: Path, preset: str, seed: int) -> tuple[BertEncoderDecoder, Path]:
    torch.manual_seed(seed)
    config = preset_config(preset, vocab_size=tokenizer.get_vocab_size(with_added_tokens=True))
    model = BertEncoderDecoder(config).eval()
    ids = special_ids(tokenizer)
    run_dir = work_dir / f"generation-run-{preset}"
    shutil.rmtree(run_dir, ignore_errors=True)
    save_tokenizer(tokenizer, run_dir / TOKENIZER_DIR, model_max_length=config.max_position_embeddings)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["EncoderDecoderModel"],
        "decoder_start_token_id": ids.start,
        "eos_token_id": ids.end,
        "max_target_length": 64,
    }
    checkpoint = save_checkpoint(run_dir, 0, model.state_dict(), checkpoint_config, None, keep_last=1)
    export_dir = work_dir / f"generation-export-{preset}"
    shutil.rmtree(export_dir, ignore_errors=True)
    return model, export_hf(checkpoint, export_dir)


def padded(sequences: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
    return ids, (ids != pad).long()


def clocks() -> tuple[float, float]:
    # Wall time, and this process's CPU time: on a shared machine the CPU seconds a side needed are
    # the steadier measure of its work, the wall time is what a user waits.
    return time.perf_counter(), time.process_time()


def decode_prefine(model, batches, beams: int, new_tokens: int, ids: SpecialIds) -> tuple[float, float, list[list[int]]]:
    config = DecodingConfig(num_beams=beams, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    (wall, cpu), outputs = clocks(), []
    for input_ids, mask in batches:
        outputs += generate(model, input_ids, mask, config, new_tokens, ids)
    return time.perf_counter() - wall, time.process_time() - cpu, outputs


def decode_hf(model, batches, beams: int, new_tokens: int, ids: SpecialIds, cache: str = "") -> tuple[float, float, list[list[int]]]:
    # cache: generate()'s cache_implementation ("static"), or "" for its default (a DynamicCache).
    options = {"cache_implementation": cache} if cache else {}
    (wall, cpu), outputs = clocks(), []
    with torch.inference_mode():
        for input_ids, mask in batches:
            result = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                num_beams=beams,
                do_sample=False,
                early_stopping=False,
                length_penalty=1.0,
                **options,
            )
            outputs += [[token for token in row[1:] if token not in (ids.end, ids.pad)] for row in result.tolist()]
    return time.perf_counter() - wall, time.process_time() - cpu, outputs


def train_prefine(model, batches: list[dict], warmup: int) -> tuple[float, float]:
    optimizer = build_optimizer(model, TrainingConfig(learning_rate=1e-4), torch.device("cpu"))
    model.train()
    wall, cpu = clocks()
    for index, batch in enumerate(batches):
        if index == warmup:
            wall, cpu = clocks()
        optimizer.zero_grad(set_to_none=True)
        model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"], batch["labels"]).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return time.perf_counter() - wall, time.process_time() - cpu


# torch.optim.AdamW's implementation a variant's third part names; none: torch's default (the per-parameter loop on CPU).
ADAMW_IMPLEMENTATIONS = {"": {}, "fused": {"fused": True}, "foreach": {"foreach": True}}
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
DEFAULT_HF_VARIANTS = "grouped-sdpa-fused,grouped-sdpa-foreach,grouped-eager-fused,grouped-eager-foreach"
# generate()'s cache_implementation a decoding variant's second part names; none: generate()'s default (DynamicCache).
DECODING_CACHES = ("", "static")
DEFAULT_HF_DECODING_VARIANTS = "sdpa,eager,sdpa-static,eager-static"


def parse_hf_decoding_variant(variant: str) -> tuple[str, str]:
    """`default` or `ATTN[-static]` as (attn_implementation or "" for from_pretrained's, cache_implementation or "")."""
    if variant == "default":
        return "", ""
    attention, _, cache = variant.partition("-")
    if attention not in ATTENTION_IMPLEMENTATIONS or cache not in DECODING_CACHES:
        sys.exit(f"--hf-decoding-variants {variant}: expected default or ATTN[-static] with ATTN sdpa or eager")
    return attention, cache


def parse_hf_variant(variant: str) -> tuple[bool, str, str]:
    """`default` or `grouped-ATTN[-ADAMW]` as (length-grouped, attn_implementation or "" for from_pretrained's, AdamW)."""
    if variant == "default":
        return False, "", ""
    parts = variant.split("-")
    if parts[0] != "grouped" or len(parts) not in (2, 3) or parts[1] not in ATTENTION_IMPLEMENTATIONS:
        sys.exit(f"--hf-variants {variant}: expected default or grouped-ATTN[-ADAMW] with ATTN sdpa or eager")
    adamw = parts[2] if len(parts) == 3 else ""
    if adamw not in ADAMW_IMPLEMENTATIONS:
        sys.exit(f"--hf-variants {variant}: the third part names torch's AdamW implementation, fused or foreach")
    return True, parts[1], adamw


def grouped_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """The Trainer's `group_by_length`: the pool (one megabatch of 50 batches) sorted by length into batches; the
    batch order shuffled with the seed, so the timed steps are a fair sample rather than the longest batches; the
    batch holding the longest example first, as LengthGroupedSampler and prefine's own batches put it."""
    grouped = length_grouped(order, lengths, batch_size)
    full = len(grouped) // batch_size
    batches = grouped[: full * batch_size].reshape(full, batch_size)[np.random.default_rng(seed).permutation(full)]
    longest = int(np.argmax(lengths[batches].max(axis=1)))
    batches[[0, longest]] = batches[[longest, 0]]
    return list(batches)


def attention_used(model) -> str:
    """The attention implementation the loaded encoder and decoder actually run (what `from_pretrained` settled on)."""
    encoder, decoder = model.encoder.config._attn_implementation, model.decoder.config._attn_implementation
    return encoder if encoder == decoder else f"encoder {encoder}, decoder {decoder}"


def train_hf(model, batches: list[dict], warmup: int, adamw: str = "") -> tuple[float, float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, **ADAMW_IMPLEMENTATIONS[adamw])
    model.train()
    wall, cpu = clocks()
    for index, batch in enumerate(batches):
        if index == warmup:
            wall, cpu = clocks()
        optimizer.zero_grad(set_to_none=True)
        # transformers builds decoder_input_ids ([CLS] + labels shifted) and their mask from the labels itself.
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=6, repeats=3)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--single-inputs", type=int, default=4, help="inputs decoded one at a time for the batch-1 rows")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max-source-length", type=int, default=256, help="the generation task's default")
    parser.add_argument("--max-target-length", type=int, default=64, help="the generation task's default")
    parser.add_argument("--no-training", dest="training", action="store_false", help="skip the training table")
    parser.add_argument(
        "--hf-variants",
        default=DEFAULT_HF_VARIANTS,
        help="transformers training sides: grouped-ATTN[-ADAMW] (length-grouped batches, attn_implementation ATTN sdpa or "
        "eager, torch AdamW fused or foreach) or default (random-order batches, from_pretrained's attention, AdamW's "
        f"defaults: the old plain loop); default: {DEFAULT_HF_VARIANTS}",
    )
    parser.add_argument(
        "--hf-decoding-variants",
        default=DEFAULT_HF_DECODING_VARIANTS,
        help="transformers decoding sides: ATTN[-static] (attn_implementation ATTN sdpa or eager; -static: generate()'s "
        "cache_implementation='static' instead of its default cache) or default (from_pretrained's attention, generate()'s "
        f"default cache: the old single configuration); each row is against its fastest; default: {DEFAULT_HF_DECODING_VARIANTS}",
    )
    args = parser.parse_args()
    variants = list(dict.fromkeys(name.strip() for name in args.hf_variants.split(",") if name.strip()))
    if args.training and not variants:
        sys.exit("--hf-variants names no transformers side")
    parsed_variants = {variant: parse_hf_variant(variant) for variant in variants}
    decoding_variants = list(dict.fromkeys(name.strip() for name in args.hf_decoding_variants.split(",") if name.strip()))
    if not decoding_variants:
        sys.exit("--hf-decoding-variants names no transformers side")
    parsed_decoding = {variant: parse_hf_decoding_variant(variant) for variant in decoding_variants}
    set_threads(args.threads)
    import warnings

    from transformers import EncoderDecoderModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)  # EncoderDecoderModel's loss deprecation notice, once per step

    tokenizer, _ = benchmark_tokenizer(args.work_dir, args.vocab_size)
    ids = special_ids(tokenizer)
    model, export_dir = exported_model(tokenizer, args.work_dir, args.preset, args.seed)
    # One loaded model per attention choice; a -static variant differs from its ATTN variant only in generate()'s cache.
    hf_models = {}
    for attention in dict.fromkeys(attention for attention, _ in parsed_decoding.values()):
        options = {"attn_implementation": attention} if attention else {}
        hf_models[attention] = EncoderDecoderModel.from_pretrained(str(export_dir), **options).eval()
    decoding_attention = {}
    for variant, (attention, _) in parsed_decoding.items():
        decoding_attention[variant] = attention_used(hf_models[attention])
        asked = attention or "from_pretrained's choice"
        print(f"transformers decoding {variant}: asked for {asked} attention, runs {decoding_attention[variant]}", file=sys.stderr)
    train_pairs, _ = builtin_generation_task()
    documents = [pair["document"] for pair in train_pairs]
    sources = encode_examples(documents[: args.batch_size], None, tokenizer, args.max_source_length)
    rows = [sources.example_ids(index) for index in range(len(sources))]
    settings = {
        f"batch {args.batch_size}": [padded(rows, ids.pad)],
        "batch 1": [padded([row], ids.pad) for row in rows[: args.single_inputs]],
    }
    hf_sides = {f"transformers {variant}": variant for variant in decoding_variants}
    decoders = {"prefine": functools.partial(decode_prefine, model, new_tokens=args.new_tokens, ids=ids)}
    for side, variant in hf_sides.items():
        attention, cache = parsed_decoding[variant]
        decoders[side] = functools.partial(decode_hf, hf_models[attention], new_tokens=args.new_tokens, ids=ids, cache=cache)
    sides = list(decoders)
    for batches in settings.values():  # untimed: lazy initialisation, allocator warm-up; a variant that fails here stops the run
        for side, decode in decoders.items():
            for beams in (1, args.beams):
                try:
                    decode(batches[:1], beams)
                except Exception as error:  # name the variant: the traceback alone does not
                    if side == "prefine":
                        raise
                    sys.exit(f"{side} fails here ({type(error).__name__}: {error}); leave it out of --hf-decoding-variants")

    table, variant_table, results, headlines = [], [], [], {}
    for setting, batches in settings.items():
        inputs = sum(batch[0].shape[0] for batch in batches)
        for beams in (1, args.beams):
            walls: dict[str, list[float]] = {side: [] for side in sides}
            cpus: dict[str, list[float]] = {side: [] for side in sides}
            outputs = {}
            for repeat in range(args.repeats):
                for side in sides if repeat % 2 == 0 else sides[::-1]:
                    wall, cpu, outputs[side] = decoders[side](batches, beams)
                    walls[side].append(wall)
                    cpus[side].append(cpu)
            name = "greedy" if beams == 1 else f"beam {beams}"
            rates = {side: inputs * args.new_tokens / median(seconds) for side, seconds in walls.items()}
            cpu_rates = {side: inputs * args.new_tokens / median(seconds) for side, seconds in cpus.items()}
            same = {side: sum(a == b for a, b in zip(outputs["prefine"], outputs[side])) / inputs for side in hf_sides}
            fastest = max(hf_sides, key=rates.__getitem__)
            table.append(
                [
                    setting,
                    name,
                    rates["prefine"],
                    rates[fastest],
                    hf_sides[fastest],
                    f"**{rates['prefine'] / rates[fastest]:.2f}x**",
                    f"{cpu_rates['prefine'] / cpu_rates[fastest]:.2f}x",
                    f"{100 * same[fastest]:.0f}%",
                ]
            )
            variant_table.append(
                [setting, name, *(rates[side] for side in hf_sides), " / ".join(f"{100 * same[side]:.0f}%" for side in hf_sides)]
            )
            results.append(
                {
                    "setting": setting,
                    "decoding": name,
                    # "transformers": the fastest variant of this row (transformers_variant names it).
                    "tokens_per_s": {"prefine": rates["prefine"], "transformers": rates[fastest]},
                    "tokens_per_cpu_s": {"prefine": cpu_rates["prefine"], "transformers": cpu_rates[fastest]},
                    "wall_seconds": {"prefine": walls["prefine"], "transformers": walls[fastest]},
                    "cpu_seconds": {"prefine": cpus["prefine"], "transformers": cpus[fastest]},
                    "same_output": same[fastest],
                    "transformers_variant": hf_sides[fastest],
                    "transformers_variants": {
                        variant: {
                            "tokens_per_s": rates[side],
                            "tokens_per_cpu_s": cpu_rates[side],
                            "wall_seconds": walls[side],
                            "cpu_seconds": cpus[side],
                            "same_output": same[side],
                        }
                        for side, variant in hf_sides.items()
                    },
                }
            )
            measured = ", ".join(f"{variant} {rates[side]:.0f}" for side, variant in hf_sides.items())
            print(
                f"{setting} {name}: prefine {rates['prefine']:.0f} tok/s; transformers {measured} tok/s (fastest {hf_sides[fastest]})",
                file=sys.stderr,
            )
            # The anchor is the fastest transformers decoding variant of this row.
            headline = against_strongest_anchor(rates, "generated tokens/s")
            headline["text"] += f" ({setting}, {name})"
            headlines[f"{setting} {name}"] = headline

    conditions = (
        f"{args.preset} encoder-decoder, {args.new_tokens} new tokens per input, sources up to {args.max_source_length} tokens, "
        f"{args.threads} threads, median of {args.repeats} alternating repeats (shared machine: timings are noisy); "
        "transformers: the fastest of its decoding variants for each row"
    )
    header = [
        "inputs",
        "decoding",
        "prefine tok/s",
        "transformers tok/s",
        "transformers variant",
        "speed-up (wall)",
        "speed-up (CPU time)",
        "same tokens",
    ]
    print(f"\n{conditions}\n")
    print(markdown_table(header, table))
    variant_conditions = "transformers decoding variants, generated tokens/s (wall) of each; attention run: " + ", ".join(
        f"{variant} {attention}" for variant, attention in decoding_attention.items()
    )
    variant_header = [
        "inputs",
        "decoding",
        *(f"{variant} tok/s" for variant in decoding_variants),
        "same tokens as prefine (" + " / ".join(decoding_variants) + ")",
    ]
    print(f"\n{variant_conditions}\n")
    print(markdown_table(variant_header, variant_table))
    more_tables = [(variant_conditions, variant_header, variant_table)]

    training = None
    if args.training:
        # A pool of 50 batches: prefine draws its (length-grouped) training batches from it as `prefine finetune`
        # does; the transformers variants take the same pool grouped by source length as the Trainer's
        # group_by_length does (`default`: in a seeded random order), padded per batch.
        pool = train_pairs[: args.batch_size * 50]
        encoded = EncodedPairs(
            encode_examples([pair["document"] for pair in pool], None, tokenizer, args.max_source_length),
            encode_examples([pair["summary"] for pair in pool], None, tokenizer, args.max_target_length),
            [pair["document"] for pair in pool],
            [pair["summary"] for pair in pool],
        )
        count = args.steps + args.warmup
        if count > len(pool) // args.batch_size:
            sys.exit(f"--steps + --warmup {count}: the pool holds only {len(pool) // args.batch_size} batches of {args.batch_size}")
        grouped = GenerationBatches(encoded, args.batch_size, ids.pad, args.seed)
        order = np.random.default_rng(args.seed).permutation(len(pool))
        hf_orders = {
            False: [order[step * args.batch_size : (step + 1) * args.batch_size] for step in range(count)],
            True: grouped_batches(order, encoded.sources.lengths, args.batch_size, args.seed)[:count],
        }
        side_batches = {"prefine": [grouped.batch_at(DataPosition(0, step * args.batch_size), 0, 1)[0] for step in range(count)]}
        for variant, (length_grouped_order, _, _) in parsed_variants.items():
            side_batches[f"transformers {variant}"] = [collate_pairs(encoded, rows, ids.pad) for rows in hf_orders[length_grouped_order]]
        sides = list(side_batches)
        padded_lengths = {
            side: (
                float(np.mean([batch["input_ids"].shape[1] for batch in batches])),
                float(np.mean([batch["labels"].shape[1] for batch in batches])),
            )
            for side, batches in side_batches.items()
        }
        timed_examples = args.batch_size * args.steps
        walls: dict[str, list[float]] = {side: [] for side in sides}
        cpus: dict[str, list[float]] = {side: [] for side in sides}
        hf_attention: dict[str, str] = {}
        for repeat in range(args.repeats):
            for side in sides if repeat % 2 == 0 else sides[::-1]:
                torch.manual_seed(args.seed)
                if side == "prefine":
                    fresh = BertEncoderDecoder(model.config)
                    fresh.load_state_dict(model.state_dict())
                    wall, cpu = train_prefine(fresh, side_batches[side], args.warmup)
                else:
                    _, attention, adamw = parsed_variants[side.removeprefix("transformers ")]
                    hf_train = EncoderDecoderModel.from_pretrained(
                        str(export_dir), **({"attn_implementation": attention} if attention else {})
                    )
                    hf_attention[side] = attention_used(hf_train)
                    if attention and hf_attention[side] != attention:
                        print(f"{side}: asked for {attention} attention, transformers runs {hf_attention[side]}", file=sys.stderr)
                    wall, cpu = train_hf(hf_train, side_batches[side], args.warmup, adamw)
                walls[side].append(wall)
                cpus[side].append(cpu)
            timings = "  ".join(f"{side} {seconds[-1]:.1f}s" for side, seconds in walls.items())
            print(f"training repeat {repeat}: {timings}", file=sys.stderr)
        rates = {side: timed_examples / median(seconds) for side, seconds in walls.items()}
        cpu_rates = {side: timed_examples / median(seconds) for side, seconds in cpus.items()}
        training_conditions = f"training: {args.steps} timed steps of {args.batch_size} (body, summary) pairs after {args.warmup} warm-up"
        training_header = ["side", "examples/s", "examples per CPU-second", "mean padded source / target"]
        anchors = sides[1:]
        training_rows = [
            [side, rates[side], cpu_rates[side], f"{padded_lengths[side][0]:.0f} / {padded_lengths[side][1]:.0f}"] for side in sides
        ] + [
            [
                f"**speed-up vs {side}**",
                f"**{rates['prefine'] / rates[side]:.2f}x**",
                f"{cpu_rates['prefine'] / cpu_rates[side]:.2f}x",
                "",
            ]
            for side in anchors
        ]
        print(f"\n{training_conditions}\n")
        print(markdown_table(training_header, training_rows))
        more_tables.append((training_conditions, training_header, training_rows))
        fastest = max(anchors, key=rates.__getitem__)
        print("transformers training variants (examples/s): " + ", ".join(f"{side} {rates[side]:,.1f}" for side in anchors))
        print(f"fastest transformers training variant: {fastest} ({rates[fastest]:,.1f} examples/s, attention {hf_attention[fastest]})")
        headlines["training"] = against_strongest_anchor(rates, "training examples/s")
        training = {
            "examples_per_s": rates,
            "examples_per_cpu_s": cpu_rates,
            "wall_seconds": walls,
            "cpu_seconds": cpus,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "mean_padded_source_target": padded_lengths,
            "hf_variants": variants,
            "hf_attention": hf_attention,
            "strongest_anchor": fastest,
        }

    record = {
        "benchmark": "generation_throughput",
        "preset": args.preset,
        "threads": args.threads,
        "new_tokens": args.new_tokens,
        "beams": args.beams,
        "batch_size": args.batch_size,
        "decoding": results,
        "hf_decoding_variants": decoding_variants,
        "decoding_attention": decoding_attention,
        "training": training,
        "versions": versions(),
        "headlines": headlines,
    }
    # The results file's headline: the first decoding row (a full batch, greedy), and training where it ran.
    first = next(iter(headlines.values()))
    headline = {**first, "text": first["text"] + (f", {headlines['training']['text']}" if "training" in headlines else "")}
    write_results(args.results, "generation_throughput", header, table, record, args.threads, conditions, headline, more_tables)
    print_json(record)


if __name__ == "__main__":
    main()
