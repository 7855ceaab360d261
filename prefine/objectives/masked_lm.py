"""BERT's masked-LM objectives on one model: masked LM alone (`mlm`) and with next-sentence prediction (`mlm+nsp`).

Both train `BertForPreTraining` (the MLM head, and the NSP head that only sentence pairs feed) and
differ only in the data they read, so the two objective modules are a name, a line of help and a
layout over `MaskedLMObjective`. ELECTRA's generator is a masked LM too: it reuses the loop-facing
`PretrainingTask` and the end-of-run comparison with word frequencies (`masked_lm_summary`).

Training statistics (loss, MLM accuracy) come from outputs the model computes anyway, so logging
them costs nothing. Evaluation runs on a fixed set of held-out instances with fixed masks, so its
numbers are comparable from one evaluation to the next.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from prefine.data_position import DataPosition
from prefine.interop import load_into
from prefine.model import IGNORE_LABEL, IGNORE_NSP, BertConfig, BertForPreTraining
from prefine.objectives.interface import InitWeights, PretrainingObjective
from prefine.pretraining_data import PretrainingBatches


class PretrainingTask:
    """Adapts `PretrainingBatches` (train and eval) to the loop's `TrainingTask` protocol."""

    # Which way each held-out metric improves, for --best-metric.
    metric_directions = {"mlm_loss": "min", "perplexity": "min", "mlm_accuracy": "max", "nsp_accuracy": "max"}

    def __init__(self, train_batches, eval_batches: list[dict[str, torch.Tensor]], device: torch.device):
        self.train_batches = train_batches
        self.eval_batch_list = eval_batches
        self.device = device

    def start_position(self) -> DataPosition:
        return DataPosition(epoch=0, offset=0)

    def batch_at(self, position, rank: int, world_size: int):
        return self.train_batches.batch_at(position, rank, world_size)

    @staticmethod
    def _model_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {
            "input_ids": batch["input_ids"],
            "token_type_ids": batch["token_type_ids"],
            "attention_mask": batch["attention_mask"],
            "mlm_labels": batch["mlm_labels"],
            "next_sentence_label": batch["next_sentence_label"],
        }

    @staticmethod
    def loss_units(batch: dict[str, Any]) -> dict[str, int]:
        """Masked tokens and sentence pairs in a micro-batch: the units the MLM and NSP losses average over."""
        return {
            "mlm": int((batch["mlm_labels"] != IGNORE_LABEL).sum()),
            "nsp": int((batch["next_sentence_label"] != IGNORE_NSP).sum()),
        }

    def loss(
        self, model: nn.Module, batch: dict[str, Any], global_units: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """This micro-batch's share of the global batch's per-token MLM (+ per-pair NSP) loss.

        `global_units` are `loss_units` summed over every micro-batch of the step on every rank (the
        loop supplies them); without them this batch is the whole global batch. Each mean is
        weighted by this batch's share of its units, so the shares add up to the mean over the
        global batch however it is split into micro-batches and processes. The statistics carry
        the same weights, so their sum is the global batch's value.
        """
        output = model(**self._model_inputs(batch))
        local_units = self.loss_units(batch)
        totals = global_units if global_units is not None else local_units
        mlm_weight, nsp_weight = (local_units[name] / totals[name] if totals[name] else 0.0 for name in ("mlm", "nsp"))
        loss = output.mlm_loss * mlm_weight + output.nsp_loss * nsp_weight
        with torch.no_grad():
            mlm_accuracy = (
                (output.mlm_logits.argmax(-1) == output.mlm_targets).float().mean() if output.mlm_targets.numel() else torch.tensor(0.0)
            )
        return loss, {
            "loss": float(loss.detach()),
            "mlm_loss": float(output.mlm_loss.detach()) * mlm_weight,
            "nsp_loss": float(output.nsp_loss.detach()) * nsp_weight,
            "mlm_accuracy": float(mlm_accuracy) * mlm_weight,
        }

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_pretraining(model, self.eval_batch_list, self.device)


def evaluate_pretraining(model: nn.Module, batches: list[dict[str, Any]], device: torch.device) -> dict[str, float]:
    """Token-weighted MLM loss, perplexity and accuracy, and NSP accuracy over fixed batches."""
    mlm_loss_sum = mlm_correct = mlm_count = 0.0
    nsp_correct = nsp_count = 0.0
    for batch in batches:
        inputs = {key: value.to(device) for key, value in PretrainingTask._model_inputs(batch).items()}
        output = model(**inputs)
        count = output.mlm_targets.numel()
        mlm_loss_sum += float(output.mlm_loss) * count
        mlm_correct += float((output.mlm_logits.argmax(-1) == output.mlm_targets).sum())
        mlm_count += count
        labels = inputs["next_sentence_label"]
        counted = labels != IGNORE_NSP
        nsp_correct += float((output.nsp_logits.argmax(-1)[counted] == labels[counted]).sum())
        nsp_count += float(counted.sum())
    mlm_loss = mlm_loss_sum / max(mlm_count, 1)
    metrics = {
        "mlm_loss": mlm_loss,
        "perplexity": math.exp(min(mlm_loss, 50.0)),
        "mlm_accuracy": mlm_correct / max(mlm_count, 1),
    }
    if nsp_count:
        metrics["nsp_accuracy"] = nsp_correct / nsp_count
    return metrics


class MaskedLMObjective(PretrainingObjective):
    """BERT's pre-training model and losses; a subclass names the objective and its data layout."""

    architecture = "BertForPreTraining"
    headline_metric = "mlm_accuracy"

    def build_model(self, config: BertConfig, settings: Any, saved_run: dict[str, Any] | None) -> nn.Module:
        return BertForPreTraining(config)

    def model_from_init(self, init: InitWeights, settings: Any) -> nn.Module:
        model = BertForPreTraining(init.config)
        report = load_into(model, init.state_dict)
        if report.newly_initialized:
            print(f"init: loaded {init.description}; newly initialized: {', '.join(report.newly_initialized)}")
        return model

    def start_from_token_frequencies(self, model: nn.Module, counts: torch.Tensor, mlm_probability: float) -> None:
        cast(BertForPreTraining, model).start_from_token_frequencies(counts, mlm_probability)

    def training_task(self, train_batches, eval_batches, device, settings) -> PretrainingTask:
        return PretrainingTask(train_batches, eval_batches, device)

    def summary(self, last_eval, run_dir: Path, train_batches, eval_batches) -> list[str]:
        return masked_lm_summary(last_eval, train_batches, eval_batches)


def masked_lm_summary(last_eval: dict[str, float], train_batches: PretrainingBatches, eval_batches: list[dict[str, Any]]) -> list[str]:
    """The held-out masked-LM loss and accuracy beside those of word frequencies alone.

    Masked LM first learns word frequencies, and only a loss well below theirs says the encoder
    has learned something about context.
    """
    if "mlm_loss" not in last_eval or (baseline := train_batches.unigram_baseline(eval_batches)) is None:
        return []
    return [
        f"held-out masked LM: loss {last_eval['mlm_loss']:.2f} nats, accuracy {last_eval['mlm_accuracy']:.1%} "
        f"(word frequencies alone: {baseline[0]:.2f} nats, {baseline[1]:.1%})"
    ]
