"""Token classification (NER) throughput: fine-tuning and inference, prefine against transformers.

Data: the built-in entity task (code entities in Python's documentation; no download), same
tokenizer, same preset, same threads on both sides; the model is random (throughput does not
depend on the weights), and the inference sides share one set of weights.

Fine-tuning, --steps timed steps of --batch-size sentences (compared in real tokens/s: the sides
draw different random batches, and prefine's are length-grouped, so padding is part of the cost):

  prefine       encode_corpus (pieces aligned to words, long sentences in windows)
                -> WindowBatches (length-grouped, padded per batch) -> BertForTokenClassification
                -> prefine's AdamW.
  transformers  run_ner.py's recipe: tokenizer(words, is_split_into_words=True, truncation)
                -> first-piece labels, -100 elsewhere -> random-order batches
                -> DataCollatorForTokenClassification -> BertForTokenClassification -> torch AdamW.
  transformers tuned
                the same, as a user tuning it would run it: batches grouped by length the way the
                Trainer's `group_by_length` does (megabatches of 50 batches sorted by length) and
                torch's fused AdamW (the fastest transformers setup the fine-tuning benchmark measured).

Inference, every test sentence as plain text, entity spans out:

  prefine       NerPredictor.tag_texts (windows, length-sorted batches, spans with offsets).
  transformers  pipeline("token-classification", aggregation_strategy="first", batch_size=--eval-batch-size).
  transformers tuned
                the same pipeline fed the texts sorted by length (order restored afterwards), so each
                batch pads to similar lengths.

The headline is prefine against the faster transformers side of each workload.

    python benchmarks/ner_throughput.py --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
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

from prefine.corpus.builtin_entities import builtin_entity_task  # noqa: E402
from prefine.model import preset_config  # noqa: E402
from prefine.model.heads import BertForTokenClassification  # noqa: E402
from prefine.tasks.interface import get_task  # noqa: E402
from prefine.tasks.ner_data import TaggedCorpus, TaggedSentence, TagSet, encode_corpus  # noqa: E402
from prefine.tasks.token_classification import NerDataConfig, NerPredictor, WindowBatches  # noqa: E402
from prefine.training.config import TrainingConfig  # noqa: E402
from prefine.training.optim import build_optimizer  # noqa: E402


def _corpus(sentences) -> TaggedCorpus:
    return TaggedCorpus(
        "built-in", [TaggedSentence(words, tags, [0] * len(words)) for words, tags in sentences], "words", "built-in entity task"
    )


def _hf_model(config, num_labels: int, state_dict=None):
    from transformers import BertConfig
    from transformers import BertForTokenClassification as HFBertForTokenClassification

    hf_config = BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        num_labels=num_labels,
    )
    model = HFBertForTokenClassification(hf_config)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def _timed_steps(model, optimizer, batches, warmup: int, prefine: bool) -> tuple[float, int, int, int, float]:
    """(seconds, sentences-or-windows, real tokens, padded tokens, CPU seconds) over the batches after the first `warmup`."""
    start, items, tokens, padded, cpu_start = 0.0, 0, 0, 0, 0.0
    for index, batch in enumerate(batches):
        if index == warmup:
            start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        if prefine:
            loss = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["labels"]).loss
        else:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if index >= warmup:
            items += batch["input_ids"].shape[0]
            tokens += int(batch["attention_mask"].sum())
            padded += batch["input_ids"].numel()
    return time.perf_counter() - start, items, tokens, padded, time.process_time() - cpu_start


def run_ner_features(hf_tok, sentences, tag_set: TagSet, max_length: int) -> list[dict]:
    """transformers' run_ner.py preprocessing: first piece of each word labelled, -100 elsewhere, truncated."""
    label_ids = {name: number for number, name in enumerate(tag_set.names)}
    encoded = hf_tok([words for words, _ in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    features = []
    for index, (_, tags) in enumerate(sentences):
        previous, labels = None, []
        for word in encoded.word_ids(index):
            labels.append(-100 if word is None or word == previous else label_ids[tags[word]])
            previous = word
        features.append({key: encoded[key][index] for key in encoded} | {"labels": labels})
    return features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=30, repeats=3)
    add_model_vocab_argument(parser)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--inference-sentences", type=int, default=400, help="test sentences tagged per inference repeat")
    args = parser.parse_args()
    set_threads(args.threads)
    from transformers import DataCollatorForTokenClassification, pipeline

    tokenizer, tokenizer_dir = benchmark_tokenizer(args.work_dir, args.vocab_size)
    hf_tok = hf_tokenizer(tokenizer_dir)
    train, test = builtin_entity_task()
    tag_set = TagSet.from_corpus(_corpus(train), "IOB2")
    # Training models get BERT's embedding rows like the other fine-tuning benchmark; inference the tokenizer's own size.
    train_config = preset_config(args.preset, vocab_size=model_vocab_size(tokenizer, args.model_vocab_size))
    config = preset_config(args.preset, vocab_size=tokenizer.get_vocab_size())
    pad_id = tokenizer.token_to_id("[PAD]")

    encoded = encode_corpus(_corpus(train), tokenizer, tag_set, args.max_seq_length, args.max_seq_length // 2)
    batches = WindowBatches(encoded.windows, args.batch_size, pad_id, args.seed)
    total_steps = args.warmup + args.steps
    rng = np.random.default_rng(args.seed)
    full_batches = len(encoded.windows) // args.batch_size
    # The same batches every repeat, spread over the epoch (so neither side is timed on short batches only).
    offsets = [int(index) * args.batch_size for index in rng.choice(full_batches, min(total_steps, full_batches), replace=False)]
    prefine_batches = [batches.batch_at(batches.start_position()._replace(offset=offset), 0, 1)[0] for offset in offsets]
    features = run_ner_features(hf_tok, train, tag_set, args.max_seq_length)
    collator = DataCollatorForTokenClassification(hf_tok)
    permutation = rng.permutation(len(features))
    grouped = length_grouped(permutation, np.array([len(feature["input_ids"]) for feature in features]), args.batch_size)
    batch_numbers = rng.choice(len(features) // args.batch_size, len(offsets), replace=False)
    hf_batches = {
        # run_ner.py's random-order batches, and the Trainer's group_by_length order for the tuned side.
        side: [collator([features[row] for row in order[i * args.batch_size : (i + 1) * args.batch_size]]) for i in batch_numbers]
        for side, order in (("transformers", permutation), ("transformers tuned", grouped))
    }

    texts = [" ".join(words) for words, _ in test[: args.inference_sentences]]
    torch.manual_seed(args.seed)
    shared = BertForTokenClassification(config, len(tag_set.names)).eval()
    saved = {"data": dataclasses.asdict(NerDataConfig(max_seq_length=args.max_seq_length))}
    predictor = NerPredictor(get_task("ner"), shared, tokenizer, saved, {**tag_set.to_json(), "layout": "words"}, torch.device("cpu"))
    hf_shared = _hf_model(config, len(tag_set.names), shared.state_dict()).eval()
    hf_shared.config.id2label = dict(enumerate(tag_set.names))
    hf_shared.config.label2id = {name: number for number, name in enumerate(tag_set.names)}
    tagger = pipeline("token-classification", model=hf_shared, tokenizer=hf_tok, aggregation_strategy="first", device=-1)

    def prefine_training():
        torch.manual_seed(args.seed)
        model = BertForTokenClassification(train_config, len(tag_set.names)).train()
        return _timed_steps(
            model, build_optimizer(model, TrainingConfig(), torch.device("cpu")), prefine_batches, args.warmup, prefine=True
        )

    def hf_training(side: str):
        torch.manual_seed(args.seed)
        model = _hf_model(train_config, len(tag_set.names)).train()
        fused = {"fused": True} if side == "transformers tuned" else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, **fused)
        return _timed_steps(model, optimizer, hf_batches[side], args.warmup, prefine=False)

    def prefine_inference():
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.no_grad():
            outputs = predictor.tag_texts(texts, args.eval_batch_size)
        return time.perf_counter() - start, sum(len(output.entities) for output in outputs), time.process_time() - cpu_start

    def hf_inference(side: str):
        start, cpu_start = time.perf_counter(), time.process_time()
        order = sorted(range(len(texts)), key=lambda index: len(texts[index])) if side == "transformers tuned" else range(len(texts))
        with torch.no_grad():
            outputs = tagger([texts[index] for index in order], batch_size=args.eval_batch_size)
        return time.perf_counter() - start, sum(len(output) for output in outputs), time.process_time() - cpu_start

    sides = ("prefine", "transformers", "transformers tuned")
    training: dict[str, list] = {side: [] for side in sides}
    inference: dict[str, list] = {side: [] for side in sides}
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for side in order:
            training[side].append(prefine_training() if side == "prefine" else hf_training(side))
        for side in order:
            inference[side].append(prefine_inference() if side == "prefine" else hf_inference(side))
        print(
            f"repeat {repeat}: training "
            + ", ".join(f"{side} {training[side][-1][0]:.1f}s" for side in sides)
            + "; inference "
            + ", ".join(f"{side} {inference[side][-1][0]:.1f}s" for side in sides),
            file=sys.stderr,
        )

    rows, results = [], {}

    def tokens_of(side: str) -> int:
        return training[side][0][2]

    for side in sides:
        seconds = median([run[0] for run in training[side]])
        sentences, tokens, padded = training[side][0][1], training[side][0][2], training[side][0][3]
        infer_seconds = median([run[0] for run in inference[side]])
        results[side] = {
            "train_sentences_per_s": sentences / seconds,
            "train_tokens_per_s": tokens / seconds,
            "train_padding_share": 1 - tokens / padded,
            "inference_sentences_per_s": len(texts) / infer_seconds,
            "entities_found": inference[side][0][1],
            "train_seconds": [run[0] for run in training[side]],
            "inference_seconds": [run[0] for run in inference[side]],
            # CPU seconds of the process (all threads): less sensitive than wall time to other jobs on a shared machine.
            "train_cpu_seconds": [run[4] for run in training[side]],
            "inference_cpu_seconds": [run[2] for run in inference[side]],
        }
        rows.append(
            [
                args.preset,
                side,
                results[side]["train_sentences_per_s"],
                results[side]["train_tokens_per_s"],
                f"{results[side]['train_padding_share']:.0%}",
                results[side]["inference_sentences_per_s"],
            ]
        )
    # The sides train on different batches (random or length-grouped), so a step holds a different number of real
    # tokens: training speed is compared in real (non-padding) tokens per second, against the faster transformers side.
    train_anchor = max(sides[1:], key=lambda side: results[side]["train_tokens_per_s"])
    inference_anchor = max(sides[1:], key=lambda side: results[side]["inference_sentences_per_s"])
    train_speedup = results["prefine"]["train_tokens_per_s"] / results[train_anchor]["train_tokens_per_s"]
    inference_speedup = median(results[inference_anchor]["inference_seconds"]) / median(results["prefine"]["inference_seconds"])
    # The same ratios in CPU seconds (tokens per CPU second for training), against the same anchors.
    train_cpu_speedup = (tokens_of("prefine") / median(results["prefine"]["train_cpu_seconds"])) / (
        tokens_of(train_anchor) / median(results[train_anchor]["train_cpu_seconds"])
    )
    inference_cpu_speedup = median(results[inference_anchor]["inference_cpu_seconds"]) / median(results["prefine"]["inference_cpu_seconds"])
    anchors = f"vs {train_anchor} / {inference_anchor}"
    rows.append([args.preset, f"**speed-up** (wall, {anchors})", "", f"**{train_speedup:.2f}x**", "", f"**{inference_speedup:.2f}x**"])
    rows.append(
        [
            args.preset,
            f"**speed-up** (CPU seconds, {anchors})",
            "",
            f"**{train_cpu_speedup:.2f}x**",
            "",
            f"**{inference_cpu_speedup:.2f}x**",
        ]
    )
    conditions = (
        f"Built-in entity task: {len(train)} training sentences (mean {encoded.windows.lengths.mean():.1f} pieces with [CLS]/[SEP]), "
        f"{len(texts)} test sentences; batch {args.batch_size} (inference {args.eval_batch_size}), {args.steps} timed steps "
        f"after {args.warmup} warm-up, median of {args.repeats}, {args.threads} threads. "
        "A shared machine: compare the two sides, not absolute numbers."
    )
    header = ["model", "side", "train sentences/s", "train real tokens/s", "train padding", "inference sentences/s"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    # The faster transformers side of each workload is its anchor.
    train_headline = against_strongest_anchor({side: results[side]["train_tokens_per_s"] for side in results}, "train real tokens/s")
    inference_headline = against_strongest_anchor(
        {side: results[side]["inference_sentences_per_s"] for side in results}, "inference sentences/s"
    )
    headline = {**train_headline, "text": f"{train_headline['text']}, {inference_headline['text']}"}
    record = {
        "benchmark": "ner_throughput",
        "preset": args.preset,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "versions": versions(),
        "train_speedup": train_speedup,
        "inference_speedup": inference_speedup,
        "train_cpu_speedup": train_cpu_speedup,
        "inference_cpu_speedup": inference_cpu_speedup,
        "results": results,
        "headlines": {"training": train_headline, "inference": inference_headline},
    }
    write_results(args.results, "ner_throughput", header, rows, record, args.threads, conditions, headline)
    print_json(record)


if __name__ == "__main__":
    main()
