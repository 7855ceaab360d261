"""Text generation (summaries, titles, questions, replies) as a fine-tuning task on a BERT encoder-decoder.

The model is `prefine.model.encoder_decoder.BertEncoderDecoder`, warm-started from --init: the
encoder gets the pre-trained weights, and so does the decoder (its blocks, embeddings and, when
the checkpoint has one, the masked-LM head as its LM head); only cross-attention starts fresh.
The traps transformers users hit with EncoderDecoderModel are closed here by construction
(transformers issues #7896, #5489, #2929): the decoder starts from [CLS] and stops at [SEP],
and padded target positions carry the label -100, so they never reach the loss.

The pieces, in the order a fine-tuning run uses them:

1. `read_pairs` reads (source, target) pairs from .jsonl/.tsv/.csv or a Hugging Face dataset,
   with the columns given or detected (document/summary, text/title, question/answer, ...);
   an empty source or target is an error naming its line.
2. `encode_pairs` tokenizes both sides once: sources as [CLS] text [SEP] cut to
   --max-source-length (the truncated ones are counted in one warning), targets as
   [CLS] text [SEP] cut to --max-target-length; the decoder reads [CLS] t1 .. tn and must
   predict t1 .. tn [SEP].
3. `GenerationBatches` serves length-grouped training batches from a data position (exact resume).
4. `GenerationTask` trains on the target tokens' cross-entropy (optionally label-smoothed) and
   evaluates by generating for the eval set: ROUGE-1/2/L, BLEU, exact match and the eval loss.
5. `GenerationPredictor` serves `prefine predict / evaluate / generate` and `prefine serve`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from tqdm import tqdm

from prefine.config import option
from prefine.corpus.builtin_generation import write_builtin_generation_task
from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.generation.decoding import DecodingConfig, SpecialIds, generate
from prefine.interop.encoder_decoder import encoder_decoder_export, warm_start
from prefine.metrics.generation import format_generation_table, generation_metrics, require_bleu
from prefine.model import IGNORE_LABEL, BertConfig
from prefine.model.encoder_decoder import BertEncoderDecoder
from prefine.tasks.batching import SeekableBatches, length_grouped
from prefine.tasks.columns import ColumnPicker
from prefine.tasks.interface import (
    BuiltinComparison,
    Evaluation,
    FinetuneTask,
    HFExport,
    Predictor,
    PreparedData,
    TextGenerator,
    is_line_input,
    read_text_lines,
    register_task,
    subsample_indices,
)
from prefine.tasks.prediction_output import PredictionWriter
from prefine.tasks.selection import DevSplit, stratified_dev_indices, write_split
from prefine.tasks.task_data import RecordTable, read_records
from prefine.tasks.text_inputs import EncodedExamples, encode_examples, truncating_copy
from prefine.training.loop import TrainingTask, autocast_context

# Column names that obviously hold each side of a pair, in order of preference.
SOURCE_COLUMNS = ("source", "document", "article", "text", "input", "context", "passage", "content", "body", "question", "src")
TARGET_COLUMNS = ("target", "summary", "title", "headline", "highlights", "output", "answer", "reply", "response", "tgt")
PREDICTIONS_FILE = "predictions.json"
EVAL_METRICS_FILE = "eval_metrics.json"


@dataclass
class GenerationDataConfig:
    source_column: str | None = option(
        None, "generation: column holding the input text (default: detected, e.g. source, document, article, text)"
    )
    target_column: str | None = option(
        None, "generation: column holding the text to generate (default: detected, e.g. target, summary, title)"
    )
    max_source_length: int = option(256, "generation: longest input in tokens, [CLS] and [SEP] included; longer inputs are truncated")
    max_target_length: int = option(
        64, "generation: longest target in tokens, [CLS] and [SEP] included; longer targets are cut, and generation stops there"
    )
    label_smoothing: float = option(0.0, "generation: label smoothing of the target-token cross-entropy (0.1 is common)")
    share_encoder_decoder: bool = option(
        False, "generation: the decoder shares the encoder's weights except cross-attention (Rothe et al.'s BERTShare: half the parameters)"
    )
    eval_num_beams: int = option(1, "generation: beams when scoring the eval set (fine-tuning and prefine evaluate); 1 is greedy")
    dataset_split: str = option(
        "train", "split to train on when the training data is a Hugging Face dataset (the eval set defaults to validation)"
    )

    def __post_init__(self) -> None:
        if self.max_source_length < 3:
            raise PrefineError(
                f"--max-source-length {self.max_source_length} leaves no room for text beside [CLS] and [SEP]; use 64 or more"
            )
        if self.max_target_length < 3:
            raise PrefineError(
                f"--max-target-length {self.max_target_length} leaves no room for text beside [CLS] and [SEP]; use 32 or more"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise PrefineError(f"--label-smoothing {self.label_smoothing} must be in [0, 1)")
        if self.eval_num_beams < 1:
            raise PrefineError(f"--eval-num-beams {self.eval_num_beams} must be at least 1")

    @property
    def max_new_tokens(self) -> int:
        """Tokens the decoder may produce after [CLS]: the target length minus [CLS] ([SEP] counts)."""
        return self.max_target_length - 1


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class PairColumns:
    source: str
    target: str | None


@dataclass
class TextPairs:
    sources: list[str]
    targets: list[str] | None
    table: RecordTable
    columns: PairColumns


def choose_pair_columns(table: RecordTable, config: GenerationDataConfig, need_target: bool = True) -> PairColumns:
    """The source and target columns: the configured ones (checked) or detected ones (announced once)."""
    picker = ColumnPicker(table, ("--source-column", "--target-column"))
    target = picker.pick(config.target_column, TARGET_COLUMNS, "target", "--target-column", required=need_target, holds="the target text")
    source = picker.pick(config.source_column, SOURCE_COLUMNS, "source", "--source-column", exclude=(target,), holds="the input text")
    assert source is not None  # a required role is found or raises
    if source == target:
        raise PrefineError(f"--source-column and --target-column are both '{source}'; the model would learn to copy. Pick two columns")
    picker.announce()
    return PairColumns(source, target)


def _non_empty(values: list[str], table: RecordTable, role: str, flag: str) -> list[str]:
    for index, value in enumerate(values):
        if not value.strip():
            raise PrefineError(
                f"{table.source} {table.where(index)} has an empty {role}; fill it in or drop the row ({flag} names the column)"
            )
    return values


def read_pairs(
    source: str, config: GenerationDataConfig, split: str | None, columns: PairColumns | None = None, need_target: bool = True
) -> TextPairs:
    """Read a source of pairs (or, with `need_target=False`, of inputs only) in file order."""
    table = read_records(source, split)
    if columns is None:
        columns = choose_pair_columns(table, config, need_target)
    sources = _non_empty(table.text_column(columns.source, "source column", "--source-column"), table, "source", "--source-column")
    targets = None
    if columns.target is not None and (need_target or columns.target in table.columns):
        targets = _non_empty(table.text_column(columns.target, "target column", "--target-column"), table, "target", "--target-column")
    return TextPairs(sources, targets, table, columns)


# ---------------------------------------------------------------------------------------------
# Encoding and batches


@dataclass
class EncodedPairs:
    sources: EncodedExamples
    targets: EncodedExamples | None  # [CLS] t1 .. tn [SEP]
    source_texts: list[str]
    target_texts: list[str] | None

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, indices: np.ndarray) -> EncodedPairs:
        return EncodedPairs(
            self.sources.subset(indices),
            None if self.targets is None else self.targets.subset(indices),
            [self.source_texts[index] for index in indices],
            None if self.target_texts is None else [self.target_texts[index] for index in indices],
        )


def encode_pairs(pairs: TextPairs, tokenizer: Tokenizer, config: GenerationDataConfig, warn: bool = True) -> EncodedPairs:
    """Tokenize both sides once; sources longer than --max-source-length are truncated and counted in one warning."""
    sources = encode_examples(pairs.sources, None, tokenizer, config.max_source_length)
    targets = None if pairs.targets is None else encode_examples(pairs.targets, None, tokenizer, config.max_target_length)
    if warn:
        for what, encoded, flag, limit in (
            ("inputs", sources, "--max-source-length", config.max_source_length),
            ("targets", targets, "--max-target-length", config.max_target_length),
        ):
            if encoded is not None:
                at_limit = int((encoded.lengths >= limit).sum())
                if at_limit:
                    print(
                        f"{pairs.table.source}: {at_limit} of {len(encoded)} {what} reach {flag} {limit} and may be truncated",
                        file=sys.stderr,
                    )
    return EncodedPairs(sources, targets, pairs.sources, pairs.targets)


def collate_pairs(pairs: EncodedPairs, indices: np.ndarray, pad_id: int) -> dict[str, Any]:
    """Encoder inputs, decoder inputs ([CLS] t1 .. tn) and labels (t1 .. tn [SEP], -100 at padding)."""
    source = pairs.sources.collate(indices, pad_id)
    batch: dict[str, Any] = {
        "input_ids": source["input_ids"],
        "attention_mask": source["attention_mask"],
        "num_real_tokens": source["num_real_tokens"],
    }
    if pairs.targets is not None:
        target = pairs.targets.collate(indices, pad_id)
        ids, real = target["input_ids"], target["attention_mask"]
        batch["decoder_input_ids"] = ids[:, :-1]
        batch["labels"] = ids[:, 1:].masked_fill(real[:, 1:] == 0, IGNORE_LABEL)
        batch["num_real_tokens"] += target["num_real_tokens"]
    return batch


class GenerationBatches(SeekableBatches):
    """Training pairs, grouped by length so a batch pads little (see SeekableBatches)."""

    def __init__(self, pairs: EncodedPairs, batch_size: int, pad_id: int, seed: int):
        if not len(pairs):
            raise PrefineError("the training data holds no pairs; point at a file with data")
        super().__init__(len(pairs), batch_size, seed)
        if pairs.targets is None:
            raise ValueError("training pairs need their targets (encode_pairs with the target column)")
        self.pairs = pairs
        self.pad_id = pad_id
        self.lengths = pairs.sources.lengths + pairs.targets.lengths

    def arrange(self, order: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return length_grouped(order, self.lengths, self.batch_size, rng)

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return collate_pairs(self.pairs, indices, self.pad_id)


def special_ids(tokenizer: Tokenizer) -> SpecialIds:
    cls, sep, pad = (tokenizer.token_to_id(token) for token in ("[CLS]", "[SEP]", "[PAD]"))
    if cls is None or sep is None or pad is None:
        raise PrefineError("the tokenizer lacks [CLS], [SEP] or [PAD]; generation starts at [CLS], ends at [SEP] and pads with [PAD]")
    return SpecialIds(cls, sep, pad)


def _encoder_decoder(model: nn.Module) -> BertEncoderDecoder:
    """The BertEncoderDecoder that generation runs (DDP wraps it as `.module`): generation needs its own methods."""
    unwrapped = getattr(model, "module", model)
    if not isinstance(unwrapped, BertEncoderDecoder):
        raise TypeError(f"generation needs a BertEncoderDecoder, not a {type(unwrapped).__name__}")
    return unwrapped


def _sequential(pairs: EncodedPairs, batch_size: int, pad_id: int):
    order = np.argsort(-pairs.sources.lengths, kind="stable")  # long inputs together: little padding
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        yield indices, collate_pairs(pairs, indices, pad_id)


def generate_ids(
    model: BertEncoderDecoder,
    pairs: EncodedPairs,
    decoding: DecodingConfig,
    max_new_tokens: int,
    ids: SpecialIds,
    batch_size: int,
    device: torch.device,
) -> list[list[int]]:
    """Generated token ids for every input, in input order (a progress bar on a terminal)."""
    outputs: list[list[int]] = [[] for _ in range(len(pairs))]
    was_training = model.training
    model.eval()
    # disable=None: the bar shows on a terminal only, so logs and pipes stay clean.
    with autocast_context(device, "auto"), tqdm(total=len(pairs), unit="input", desc="generating", disable=None, leave=False) as progress:
        for indices, batch in _sequential(pairs, batch_size, ids.pad):
            generated = generate(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), decoding, max_new_tokens, ids)
            for index, tokens in zip(indices, generated):
                outputs[int(index)] = tokens
            progress.update(len(indices))
    model.train(was_training)
    return outputs


def decode_texts(tokenizer: Tokenizer, generated: list[list[int]]) -> list[str]:
    return tokenizer.decode_batch(generated, skip_special_tokens=True)


def teacher_forced_loss(model: BertEncoderDecoder, pairs: EncodedPairs, batch_size: int, pad_id: int, device: torch.device) -> float:
    """Mean cross-entropy per target token over the whole set (no label smoothing: comparable across runs)."""
    total, count = 0.0, 0
    with torch.no_grad(), autocast_context(device, "auto"):
        for _, batch in _sequential(pairs, batch_size, pad_id):
            output = model(
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                batch["decoder_input_ids"].to(device),
                batch["labels"].to(device),
            )
            total += float(output.loss) * output.num_target_tokens
            count += output.num_target_tokens
    return total / max(count, 1)


@dataclass
class ScoredGeneration:
    metrics: dict[str, float]
    table: str
    predictions: list[dict[str, str]]  # in input order: source, reference, generated
    signature: str


def score_generation(
    model: BertEncoderDecoder, tokenizer: Tokenizer, pairs: EncodedPairs, data: GenerationDataConfig, batch_size: int, device: torch.device
) -> ScoredGeneration:
    """Generate for every eval input (greedy, or --eval-num-beams) and score against the references, plus the eval loss."""
    if pairs.target_texts is None:
        raise ValueError("scoring generation needs the reference targets of the pairs")
    ids = special_ids(tokenizer)
    decoding = DecodingConfig(num_beams=data.eval_num_beams)
    generated = decode_texts(tokenizer, generate_ids(model, pairs, decoding, data.max_new_tokens, ids, batch_size, device))
    scores = generation_metrics(generated, pairs.target_texts)
    scores["loss"] = teacher_forced_loss(model, pairs, batch_size, ids.pad, device)
    metrics = {key: float(value) for key, value in scores.items() if not isinstance(value, str)}
    predictions = [
        {"source": source, "reference": reference, "generated": text}
        for source, reference, text in zip(pairs.source_texts, pairs.target_texts, generated)
    ]
    return ScoredGeneration(metrics, format_generation_table(scores, len(generated)), predictions, str(scores["bleu_signature"]))


class GenerationTask:
    """The training loop's view: pair batches, the target-token loss, and generation-based evaluation."""

    metric_directions = {"loss": "min", "rouge1": "max", "rouge2": "max", "rougeL": "max", "bleu": "max", "exact_match": "max"}

    def __init__(
        self,
        batches: GenerationBatches,
        eval_pairs: EncodedPairs | None,
        tokenizer: Tokenizer,
        data: GenerationDataConfig,
        eval_batch_size: int,
        device: torch.device,
    ):
        self.batches = batches
        self.eval_pairs = eval_pairs
        self.tokenizer = tokenizer
        self.data = data
        self.eval_batch_size = eval_batch_size
        self.device = device

    def start_position(self) -> DataPosition:
        return self.batches.start_position()

    def batch_at(self, position: DataPosition, rank: int, world_size: int) -> tuple[dict[str, Any], DataPosition]:
        return self.batches.batch_at(position, rank, world_size)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = model(
            batch["input_ids"],
            batch["attention_mask"],
            batch["decoder_input_ids"],
            batch["labels"],
            label_smoothing=self.data.label_smoothing,
        )
        accuracy = float(output.num_correct) / max(output.num_target_tokens, 1)
        return output.loss, {"loss": float(output.loss.detach()), "token_accuracy": accuracy}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_pairs is None:
            return {}
        return score_generation(
            _encoder_decoder(model), self.tokenizer, self.eval_pairs, self.data, self.eval_batch_size, self.device
        ).metrics


# ---------------------------------------------------------------------------------------------
# Prediction


def read_inputs(source: str, data: GenerationDataConfig, columns: PairColumns, stdin: TextIO) -> list[str]:
    """Texts to generate from: stdin or a .txt file hold one per line; other files use the run's source column."""
    if is_line_input(source):
        return read_text_lines(source, stdin)
    return read_pairs(source, data, "test", PairColumns(columns.source, None), need_target=False).sources


def write_generations(sources: Sequence[str], generated: Sequence[str], output: TextIO, format: str) -> None:
    """One line per input, in input order: JSONL {"source", "generated"} or TSV source<TAB>generated."""
    writer = PredictionWriter(output, format, ("source", "generated"))
    for source, text in zip(sources, generated):
        writer.write({"source": source, "generated": text}, (source, text))


class GenerationPredictor(TextGenerator):
    def __init__(self, task, model, tokenizer, saved, head, device):
        super().__init__(task, model, tokenizer, saved, head, device)
        self.columns = PairColumns(**saved["columns"])
        self.ids = special_ids(tokenizer)
        self.source_encoder = truncating_copy(tokenizer, self.data.max_source_length)

    def encode_inputs(self, texts: Sequence[str]) -> EncodedPairs:
        sources = encode_examples(texts, None, self.source_encoder, self.data.max_source_length, prepared_encoder=True)
        truncated = int((sources.lengths >= self.data.max_source_length).sum())
        if truncated:
            print(
                f"{truncated} of {len(texts)} inputs reach the run's --max-source-length {self.data.max_source_length} and are truncated",
                file=sys.stderr,
            )
        return EncodedPairs(sources, None, list(texts), None)

    def read_inputs(self, source: str, stdin: TextIO) -> list[str]:
        return read_inputs(source, self.data, self.columns, stdin)

    def write_generations(self, texts: Sequence[str], generated: Sequence[str], output: TextIO, format: str = "jsonl") -> None:
        write_generations(texts, generated, output, format)

    def max_new_tokens(self, decoding: DecodingConfig) -> int:
        return decoding.max_new_tokens or self.data.max_new_tokens

    def generate_texts(self, texts: Sequence[str], decoding: DecodingConfig, batch_size: int = 64) -> list[str]:
        generated = generate_ids(
            _encoder_decoder(self.model),
            self.encode_inputs(texts),
            decoding,
            self.max_new_tokens(decoding),
            self.ids,
            batch_size,
            self.device,
        )
        return decode_texts(self.tokenizer, generated)

    def stream(self, text: str, decoding: DecodingConfig, write: Callable[[str], Any]) -> str:
        """Generate for one text, calling `write(piece)` with each newly decoded piece of text as tokens arrive."""
        if decoding.num_beams > 1:
            generated = self.generate_texts([text], decoding)[0]
            write(generated)
            return generated
        pairs = self.encode_inputs([text])
        batch = collate_pairs(pairs, np.arange(1), self.ids.pad)
        tokens: list[int] = []
        shown = ""

        def on_tokens(rows: list[int], new: list[int]) -> None:
            nonlocal shown
            if new[0] == self.ids.end:
                return
            tokens.append(new[0])
            # WordPiece joins "##" pieces to the word before, so the text so far is decoded again and only its new tail is shown.
            text_so_far = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if text_so_far.startswith(shown):
                write(text_so_far[len(shown) :])
                shown = text_so_far

        with autocast_context(self.device, "auto"):
            generate(
                self.model,
                batch["input_ids"].to(self.device),
                batch["attention_mask"].to(self.device),
                decoding,
                self.max_new_tokens(decoding),
                self.ids,
                on_tokens,
            )
        final = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if final.startswith(shown) and len(final) > len(shown):
            write(final[len(shown) :])
        return final

    @staticmethod
    def _texts(records: list[dict[str, Any]]) -> list[str]:
        texts = []
        for index, record in enumerate(records):
            text = record.get("text", record.get("source"))
            if not isinstance(text, str) or not text.strip():
                raise PrefineError(f'input {index + 1} has no "text" string to generate from')
            texts.append(text)
        return texts

    @staticmethod
    def _decoding(decoding: DecodingConfig | dict[str, Any] | None) -> DecodingConfig:
        """Decoding settings as an object, or as JSON from an HTTP request ({"num_beams": 4, "max_new_tokens": 20})."""
        if decoding is None or isinstance(decoding, DecodingConfig):
            return decoding or DecodingConfig()
        if not isinstance(decoding, dict):
            raise PrefineError('"decoding" must be an object such as {"num_beams": 4, "max_new_tokens": 20}')
        known = {field.name for field in dataclasses.fields(DecodingConfig)}
        unknown = sorted(set(decoding) - known)
        if unknown:
            raise PrefineError(f"unknown decoding option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return DecodingConfig(**decoding)
        except TypeError as error:
            raise PrefineError(f"bad decoding options: {error}") from None

    def predict_records(
        self, records: list[dict[str, Any]], batch_size: int = 64, decoding: DecodingConfig | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        generated = self.generate_texts(self._texts(records), self._decoding(decoding), batch_size)
        return [{"generated": text} for text in generated]

    def stream_records(self, records: list[dict[str, Any]], decoding: DecodingConfig | dict[str, Any] | None = None):
        """Events for `prefine serve`'s /v1/stream: {"index", "delta"} as text is decoded, then {"index", "output"} per input.

        Decoding reports new tokens through a callback; it runs in a helper thread that hands each
        piece over a queue, so the caller receives the text while later tokens are still being decoded.
        """
        import queue
        import threading

        texts, settings = self._texts(records), self._decoding(decoding)
        for index, text in enumerate(texts):
            pieces: queue.Queue = queue.Queue()
            finished = object()
            failure: list[BaseException] = []

            # Bound as defaults: each input's worker keeps its own queue even if it outlived its turn.
            def decode(
                text: str = text, pieces: queue.Queue = pieces, finished: object = finished, failure: list[BaseException] = failure
            ) -> None:
                try:
                    with torch.inference_mode():
                        pieces.put(("output", self.stream(text, settings, lambda piece: pieces.put(("delta", piece)))))
                except BaseException as error:  # handed to the consumer, which raises it in its own thread
                    failure.append(error)
                finally:
                    pieces.put((finished, None))

            worker = threading.Thread(target=decode, daemon=True)
            worker.start()
            while True:
                kind, value = pieces.get()
                if kind is finished:
                    break
                yield {"index": index, "delta": value} if kind == "delta" else {"index": index, "output": {"generated": value}}
            worker.join()
            if failure:
                raise failure[0]

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        pairs = read_pairs(source, self.data, "validation", columns=self.columns)
        require_bleu()
        encoded = encode_pairs(pairs, self.tokenizer, self.data)
        return _as_evaluation(score_generation(_encoder_decoder(self.model), self.tokenizer, encoded, self.data, batch_size, self.device))

    def predict_cli(self, source: str, options: DecodingConfig, output: TextIO, format: str, batch_size: int) -> int:
        texts = self.read_inputs(source, sys.stdin)
        if not texts:
            raise PrefineError("no inputs to generate from; pass --data FILE or pipe one text per line")
        generated = self.generate_texts(texts, options or DecodingConfig(), batch_size)
        self.write_generations(texts, generated, output, format)
        return len(texts)


def _as_evaluation(scored: ScoredGeneration) -> Evaluation:
    outputs = {PREDICTIONS_FILE: scored.predictions, EVAL_METRICS_FILE: {**scored.metrics, "bleu_signature": scored.signature}}
    return Evaluation(scored.metrics, scored.table, outputs, {"examples": len(scored.predictions)})


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface


@dataclass
class PreparedGeneration:
    train: EncodedPairs
    eval: EncodedPairs | None
    data: GenerationDataConfig
    tokenizer: Tokenizer


class GenerationFinetuneTask(FinetuneTask):
    name = "generation"
    aliases = ("seq2seq",)
    help = "text generation (summaries, titles, replies) with a warm-started BERT encoder-decoder, from (source, target) pairs"
    data_config = GenerationDataConfig
    predict_config = DecodingConfig
    architecture = "EncoderDecoderModel"
    train_hint = "--train FILE (pairs: .jsonl, .tsv, .csv or a Hugging Face dataset)"
    metric_directions = GenerationTask.metric_directions
    generates_text = True

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "rougeL"

    def builtin_comparison(self) -> BuiltinComparison:
        return BuiltinComparison(
            name=self.name,
            heading="write a docstring's one-line summary (text generation)",
            data_folder="generation-task",
            write_data=_write_builtin_pairs,
            data=GenerationDataConfig(source_column="document", target_column="summary", max_source_length=128, max_target_length=32),
            metric="rougeL",
            metric_label="ROUGE-L on held-out docstrings",
            # 150 steps per model took about 72 CPU-seconds on an idle 2-core EPYC, plus decoding the test set.
            default_steps=150,
            run_folder="generation",
            seeded=False,
            score_digits=1,
            gain_scale=1.0,
            gain_unit="",
            examples_shown=3,
        )

    def max_length(self, data: GenerationDataConfig) -> tuple[int, str]:
        if data.max_target_length > data.max_source_length:
            return data.max_target_length, "--max-target-length"
        return data.max_source_length, "--max-source-length"

    def check_inputs(self, train: str, eval: str | None, data: GenerationDataConfig) -> None:
        pairs = read_pairs(train, data, data.dataset_split)
        if eval:
            require_bleu()
            read_pairs(eval, data, "validation", columns=pairs.columns)

    def split_dev(self, train: str, data: GenerationDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        pairs = read_pairs(train, data, data.dataset_split)
        records = list(pairs.table)
        # Free text has no classes to stratify by.
        dev, stratified = stratified_dev_indices(None, len(records), fraction, seed)
        return write_split(folder, records, dev, stratified)

    def prepare(
        self, train: str, eval: str | None, data: GenerationDataConfig, tokenizer: Tokenizer, fraction: float, seed: int
    ) -> PreparedData:
        ids = special_ids(tokenizer)
        train_pairs = read_pairs(train, data, data.dataset_split)
        eval_pairs = read_pairs(eval, data, "validation", columns=train_pairs.columns) if eval else None
        if eval_pairs is not None:
            require_bleu()
        train_encoded = encode_pairs(train_pairs, tokenizer, data)
        train_encoded = train_encoded.subset(subsample_indices(len(train_encoded), fraction, seed))
        eval_encoded = encode_pairs(eval_pairs, tokenizer, data) if eval_pairs is not None else None
        columns = train_pairs.columns
        return PreparedData(
            num_train_examples=len(train_encoded),
            num_train_items=len(train_encoded),
            has_eval=eval_encoded is not None,
            head={
                "max_seq_length": data.max_source_length,
                "max_target_length": data.max_target_length,
                "share_encoder_decoder": data.share_encoder_decoder,
                "decoder_start_token_id": ids.start,
                "eos_token_id": ids.end,
            },
            record={"columns": {"source": columns.source, "target": columns.target}},
            summary=f"{len(train_encoded)} pairs; columns: source={columns.source}, target={columns.target}",
            payload=PreparedGeneration(train_encoded, eval_encoded, data, tokenizer),
        )

    def check_encoder(self, config: BertConfig) -> None:
        if config.embedding_size:
            raise PrefineError(
                f"--init projects {config.embedding_size}-wide embeddings up to {config.hidden_size} (ELECTRA-Small's layout); the "
                "decoder warm-started from it cannot hold that projection. "
                "Start --task generation from a BERT or an ELECTRA with equal sizes"
            )

    def onnx_outputs(self) -> tuple[str, ...]:
        # Generating is a loop of decoder steps around a cache, not the one forward the ONNX export traces.
        raise PrefineError(
            "--format onnx exports tasks that answer in one encoder forward (classification, regression, NER, QA); "
            "a generation run is an encoder-decoder that decodes step by step: use --format hf (transformers' EncoderDecoderModel)"
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:
        return BertEncoderDecoder(config, share_encoder_decoder=bool(head.get("share_encoder_decoder", False)))

    def load_initial_weights(self, model: nn.Module, init: Any, from_scratch: bool, announce: bool, reinit_layers: int = 0) -> None:

        if reinit_layers:
            raise PrefineError("--reinit-layers is not supported for --task generation (the decoder is a copy of the same blocks); drop it")
        if from_scratch:
            if announce:
                print(f"init: random weights with the architecture of {init.description} (from scratch)")
            return
        report = warm_start(_encoder_decoder(model), init.state_dict)
        if announce:
            print(f"init: {init.description} into the encoder and the decoder; new: {', '.join(report)}")

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedGeneration = prepared.payload
        return GenerationTask(
            GenerationBatches(data.train, micro_batch_size, pad_id, seed), data.eval, data.tokenizer, data.data, eval_batch_size, device
        )

    def predictor(self, model, tokenizer, saved, head, device) -> GenerationPredictor:
        return GenerationPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        data: PreparedGeneration = prepared.payload
        if data.eval is None:
            raise ValueError("final_evaluation needs prepared data with held-out pairs (fine-tuning calls it only then)")
        model = _encoder_decoder(predictor.model)
        return _as_evaluation(score_generation(model, predictor.tokenizer, data.eval, data.data, batch_size, predictor.device))

    def hf_export(self, model: nn.Module, config: BertConfig, head: dict[str, Any]) -> HFExport:

        return encoder_decoder_export(model, config, head)


# The built-in comparison's pairs: enough for a tiny model's minute of fine-tuning, bounded so the section's time is too.
BUILTIN_TRAIN_PAIRS = 1200
BUILTIN_TEST_PAIRS = 60


def _write_builtin_pairs(folder: Path) -> tuple[Path, Path, str]:
    """The docstring-summary task (`prefine.corpus.builtin_generation`) as JSONL under `folder`, and a line about it."""
    train_path, test_path = write_builtin_generation_task(folder, BUILTIN_TRAIN_PAIRS, BUILTIN_TEST_PAIRS)
    with open(train_path, encoding="utf-8") as train_lines, open(test_path, encoding="utf-8") as test_lines:
        train_count, test_count = sum(1 for _ in train_lines), sum(1 for _ in test_lines)
    summary = (
        f"{train_count} training / {test_count} test docstrings "
        "(test modules unseen in fine-tuning, test docstrings unseen in pre-training)"
    )
    return train_path, test_path, summary


register_task(GenerationFinetuneTask())
