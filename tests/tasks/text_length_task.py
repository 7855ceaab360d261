"""A toy fine-tuning task that lives outside the package: predict how long a text is.

docs/adding-a-task.md walks through this file; tests/tasks/test_adding_a_task.py registers it and
runs it through the generic `prefine finetune / evaluate / predict / compare` commands, and
tests/interop/test_export_by_task.py and tests/serve/test_serve_by_task.py export and serve it
beside a classification run of the same transformers class. Nothing in prefine/ knows about it:
that is the point. It encodes, batches and writes with the modules every task shares
(`prefine.tasks.text_inputs`, `batching`, `prediction_output`), not with another task's code.

Data: a .txt file with one text per line. The target is computed, not labelled: the number of
words (or characters) of the line. The metric is the mean absolute error, which must go *down*:
the task declares that, so the best checkpoint is the one with the lowest error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch
from torch import nn

from prefine.config import option
from prefine.errors import PrefineError
from prefine.model import BertForSequenceClassification
from prefine.tasks.batching import SeekableBatches, TrainsOnBatches
from prefine.tasks.interface import Evaluation, FinetuneTask, Predictor, PreparedData, register_task, subsample_indices
from prefine.tasks.prediction_output import write_json_line
from prefine.tasks.selection import DevSplit, stratified_dev_indices
from prefine.tasks.text_inputs import EncodedExamples, encode_examples, predict_logits


@dataclass
class TextLengthDataConfig:
    # Same field name as classification's, so both tasks share the one --max-seq-length flag.
    max_seq_length: int = option(64, "longest input in tokens; longer texts are truncated")
    length_unit: Literal["words", "characters"] = option("words", "text-length: count words or characters")


def read_texts(path: str) -> list[str]:
    source = Path(path)
    if not source.is_file():
        raise PrefineError(f"{path} does not exist; pass a .txt file with one text per line")
    texts = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise PrefineError(f"{path} holds no texts; one text per line")
    return texts


def lengths_of(texts: list[str], unit: str) -> np.ndarray:
    return np.asarray([len(text.split()) if unit == "words" else len(text) for text in texts], dtype=np.float32)


class LengthBatches(SeekableBatches):
    def __init__(self, examples: EncodedExamples, batch_size: int, pad_id: int, seed: int):
        super().__init__(len(examples), batch_size, seed)
        self.examples, self.pad_id = examples, pad_id

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return self.examples.collate(indices, self.pad_id)


def mean_absolute_error(
    model: nn.Module, examples: EncodedExamples, batch_size: int, device: torch.device, pad_id: int
) -> dict[str, float]:
    predicted = predict_logits(model, examples, batch_size, device, pad_id)[:, 0]
    return {"mae": float(np.abs(predicted - examples.labels).mean()), "loss": float(((predicted - examples.labels) ** 2).mean())}


class LengthTrainingTask(TrainsOnBatches):
    """The loop's view: batches at a data position (inherited), the loss of a batch, held-out metrics."""

    metric_directions = {"mae": "min", "loss": "min"}

    def __init__(self, batches: LengthBatches, eval_examples: EncodedExamples | None, eval_batch_size: int, device: torch.device):
        self.train_batches, self.eval_examples, self.eval_batch_size, self.device = batches, eval_examples, eval_batch_size, device

    def loss(self, model: nn.Module, batch: dict[str, Any]):
        output = model(
            input_ids=batch["input_ids"],
            token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        return output.loss, {"loss": float(output.loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_examples is None:
            return {}
        return mean_absolute_error(model, self.eval_examples, self.eval_batch_size, self.device, self.train_batches.pad_id)


class LengthPredictor(Predictor):
    def encode(self, texts: list[str], with_targets: bool) -> EncodedExamples:
        targets = lengths_of(texts, self.data.length_unit) if with_targets else None
        return encode_examples(texts, None, self.tokenizer, self.data.max_seq_length, targets)

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
        texts = [str(record["text"]) for record in records]
        predicted = predict_logits(self.model, self.encode(texts, False), batch_size, self.device, self.tokenizer.token_to_id("[PAD]"))
        return [{"length": float(value)} for value in predicted[:, 0]]

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        metrics = mean_absolute_error(
            self.model, self.encode(read_texts(source), True), batch_size, self.device, self.tokenizer.token_to_id("[PAD]")
        )
        return Evaluation(metrics, f"mean absolute error {metrics['mae']:.3f} {self.data.length_unit}")

    def predict_cli(self, source: str, options: Any, output: TextIO, format: str, batch_size: int) -> int:
        texts = [line.strip() for line in sys.stdin if line.strip()] if source == "-" else read_texts(source)
        for text, result in zip(texts, self.predict_records([{"text": text} for text in texts], batch_size)):
            write_json_line(output, {"text": text, **result})
        return len(texts)


@dataclass
class PreparedLengths:
    train: EncodedExamples
    eval: EncodedExamples | None


class TextLengthTask(FinetuneTask):
    name = "text-length"
    help = "toy regression: how many words (or characters) a text has"
    data_config = TextLengthDataConfig
    architecture = "BertForSequenceClassification"  # one regression output: transformers' class fits
    metric_directions = LengthTrainingTask.metric_directions
    train_hint = "--train FILE.txt (one text per line)"

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "mae"

    def max_length(self, data: TextLengthDataConfig) -> tuple[int, str]:
        return data.max_seq_length, "--max-seq-length"

    def check_inputs(self, train: str, eval: str | None, data: TextLengthDataConfig) -> None:
        read_texts(train)
        if eval:
            read_texts(eval)

    def split_dev(self, train: str, data: TextLengthDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        # Optional: lets `prefine compare --eval TEST` (and finetune --test without --eval) choose
        # checkpoints on a dev split of --train. The targets are numbers, so the split is not stratified.
        texts = read_texts(train)
        dev, _ = stratified_dev_indices(None, len(texts), fraction, seed)
        in_dev = set(dev.tolist())
        folder.mkdir(parents=True, exist_ok=True)
        for name, keep in (("train.txt", False), ("dev.txt", True)):
            (folder / name).write_text(
                "".join(text + "\n" for index, text in enumerate(texts) if (index in in_dev) == keep), encoding="utf-8"
            )
        return DevSplit(str(folder / "train.txt"), str(folder / "dev.txt"), len(texts) - len(in_dev), len(in_dev), stratified=False)

    def prepare(self, train, eval, data: TextLengthDataConfig, tokenizer, fraction: float, seed: int) -> PreparedData:
        texts = read_texts(train)
        texts = [texts[index] for index in subsample_indices(len(texts), fraction, seed)]
        encode = lambda items: encode_examples(items, None, tokenizer, data.max_seq_length, lengths_of(items, data.length_unit))  # noqa: E731
        train_examples = encode(texts)
        eval_examples = encode(read_texts(eval)) if eval else None
        return PreparedData(
            num_train_examples=len(texts),
            num_train_items=len(texts),
            has_eval=eval_examples is not None,
            head={"problem_type": "regression", "max_seq_length": data.max_seq_length},
            record={},
            summary=f"{len(texts)} texts (target: their length in {data.length_unit})",
            payload=PreparedLengths(train_examples, eval_examples),
        )

    def build_model(self, config, head, run=None) -> nn.Module:
        return BertForSequenceClassification(config, num_labels=1)

    def training_task(self, prepared, micro_batch_size, pad_id, seed, eval_batch_size, device):
        batches = LengthBatches(prepared.payload.train, micro_batch_size, pad_id, seed)
        return LengthTrainingTask(batches, prepared.payload.eval, eval_batch_size, device)

    def predictor(self, model, tokenizer, saved, head, device) -> LengthPredictor:
        return LengthPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: LengthPredictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        metrics = mean_absolute_error(
            predictor.model, prepared.payload.eval, batch_size, predictor.device, predictor.tokenizer.token_to_id("[PAD]")
        )
        return Evaluation(metrics, f"mean absolute error {metrics['mae']:.3f} {predictor.data.length_unit}")

    def hf_config(self, head: dict[str, Any]) -> dict[str, Any]:
        # transformers reads one regression output named "length"; `prefine export` asks this task, not
        # classification, although both export a BertForSequenceClassification.
        return {"problem_type": "regression", "id2label": {"0": "length"}, "label2id": {"length": 0}}


def register() -> TextLengthTask:
    task = TextLengthTask()
    register_task(task)
    return task
