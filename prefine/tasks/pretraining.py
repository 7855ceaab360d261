"""The pre-training tasks, MLM + NSP and ELECTRA: losses and held-out metrics, plugged into the training loop.

Training statistics (loss, MLM accuracy; for ELECTRA also the discriminator's accuracy,
precision and recall on "replaced") come from outputs the model computes anyway, so logging
them costs nothing. Evaluation runs on a fixed set of held-out instances with fixed masks (and,
for ELECTRA, replacements sampled with a fixed random stream), so its numbers are comparable
from one evaluation to the next; for ELECTRA it adds the discriminator's ROC AUC, which moves
while precision and recall still read 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from prefine.model import IGNORE_LABEL, IGNORE_NSP
from prefine.model.electra import ElectraObjectiveConfig
from prefine.training.position import DataPosition


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


# Seed of the random stream evaluation samples the generator's replacements from: the same noise
# at every evaluation, and the training stream (which checkpoints carry for exact resume) untouched.
EVAL_SAMPLING_SEED = 0


class ElectraPretrainingTask(PretrainingTask):
    """ELECTRA on the same batches: `generator_weight` x MLM + `discriminator_weight` x replaced-token BCE."""

    def __init__(self, train_batches, eval_batches: list[dict[str, torch.Tensor]], device: torch.device, objective: ElectraObjectiveConfig):
        super().__init__(train_batches, eval_batches, device)
        self.objective = objective

    @staticmethod
    def _model_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {key: batch[key] for key in ("input_ids", "token_type_ids", "attention_mask", "mlm_labels")}

    @staticmethod
    def loss_units(batch: dict[str, Any]) -> dict[str, int]:
        """Masked tokens (the generator's MLM loss) and real tokens (the discriminator's loss) of a micro-batch."""
        return {"mlm": int((batch["mlm_labels"] != IGNORE_LABEL).sum()), "tokens": int(batch["attention_mask"].sum())}

    def loss(
        self, model: nn.Module, batch: dict[str, Any], global_units: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """This micro-batch's share of the global batch's per-token losses, as for MLM (see PretrainingTask.loss)."""
        output = model(**self._model_inputs(batch))
        local_units = self.loss_units(batch)
        totals = global_units if global_units is not None else local_units
        mlm_weight, token_weight = (local_units[name] / totals[name] if totals[name] else 0.0 for name in ("mlm", "tokens"))
        generator_loss = output.generator_loss * mlm_weight
        discriminator_loss = output.discriminator_loss * token_weight
        loss = self.objective.generator_weight * generator_loss + self.objective.discriminator_weight * discriminator_loss
        with torch.no_grad():
            counts = ElectraCounts.of(output)
        return loss, {
            "loss": float(loss.detach()),
            "mlm_loss": float(generator_loss.detach()),
            "discriminator_loss": float(discriminator_loss.detach()),
            "mlm_accuracy": counts.mlm_accuracy * mlm_weight,
            "discriminator_accuracy": counts.discriminator_accuracy * token_weight,
            # Ratios of this batch's own counts (under torchrun, the logged value is their mean over ranks).
            "replaced_precision": counts.replaced_precision,
            "replaced_recall": counts.replaced_recall,
            "replaced_fraction": counts.replaced_fraction,
        }

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_electra(model, self.eval_batch_list, self.device)


class ElectraCounts:
    """Token counts behind ELECTRA's statistics; they add up over batches."""

    def __init__(self) -> None:
        self.masked = self.generator_correct = 0.0
        self.tokens = self.discriminator_correct = 0.0
        self.replaced = self.predicted_replaced = self.true_replaced = 0.0

    @classmethod
    def of(cls, output) -> ElectraCounts:
        return cls().add(output)

    def add(self, output) -> ElectraCounts:
        predicted = output.discriminator_logits > 0
        self.masked += output.generator_targets.numel()
        self.generator_correct += float((output.generator_logits.argmax(-1) == output.generator_targets).sum())
        self.tokens += output.replaced.numel()
        self.discriminator_correct += float((predicted == output.replaced).sum())
        self.replaced += float(output.replaced.sum())
        self.predicted_replaced += float(predicted.sum())
        self.true_replaced += float((predicted & output.replaced).sum())
        return self

    @property
    def mlm_accuracy(self) -> float:
        return self.generator_correct / max(self.masked, 1)

    @property
    def discriminator_accuracy(self) -> float:
        return self.discriminator_correct / max(self.tokens, 1)

    @property
    def replaced_precision(self) -> float:
        # Nothing flagged as replaced: no wrong flags either; reported as 0 so it cannot look good.
        return self.true_replaced / self.predicted_replaced if self.predicted_replaced else 0.0

    @property
    def replaced_recall(self) -> float:
        return self.true_replaced / self.replaced if self.replaced else 0.0

    @property
    def replaced_fraction(self) -> float:
        return self.replaced / max(self.tokens, 1)


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative,
    ties counting half (the Mann-Whitney U statistic over average ranks). NaN without both classes."""
    scores, positive = scores.detach().double().flatten(), positive.flatten().bool()
    positives = int(positive.sum())
    negatives = positive.numel() - positives
    if not positives or not negatives:
        return float("nan")
    _, inverse, counts = torch.unique(scores, sorted=True, return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1
    average_rank = (first_rank + (counts - 1) / 2.0).double()
    rank_sum = float(average_rank[inverse][positive].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def evaluate_electra(model: nn.Module, batches: list[dict[str, Any]], device: torch.device) -> dict[str, float]:
    """The generator's MLM loss, perplexity and accuracy and the discriminator's loss, accuracy,
    precision and recall on "replaced", all token-weighted over fixed batches, and its ROC AUC.

    Precision and recall count tokens the discriminator calls "replaced" (probability above one
    half); for a long first phase it calls none, and they stay 0 while it is already learning. The
    AUC shows that phase: 0.5 is a discriminator that cannot tell replaced from original at all.
    """
    sampling = torch.Generator(device=device).manual_seed(EVAL_SAMPLING_SEED)
    counts = ElectraCounts()
    mlm_loss_sum = discriminator_loss_sum = 0.0
    scores, labels = [], []
    for batch in batches:
        inputs = {key: value.to(device) for key, value in ElectraPretrainingTask._model_inputs(batch).items()}
        output = model(**inputs, sampling_generator=sampling)
        mlm_loss_sum += float(output.generator_loss) * output.generator_targets.numel()
        discriminator_loss_sum += float(output.discriminator_loss) * output.replaced.numel()
        counts.add(output)
        scores.append(output.discriminator_logits.float().cpu())
        labels.append(output.replaced.cpu())
    mlm_loss = mlm_loss_sum / max(counts.masked, 1)
    auc = roc_auc(torch.cat(scores), torch.cat(labels)) if scores else float("nan")
    return {
        "mlm_loss": mlm_loss,
        "perplexity": math.exp(min(mlm_loss, 50.0)),
        "mlm_accuracy": counts.mlm_accuracy,
        "discriminator_loss": discriminator_loss_sum / max(counts.tokens, 1),
        "discriminator_accuracy": counts.discriminator_accuracy,
        "replaced_precision": counts.replaced_precision,
        "replaced_recall": counts.replaced_recall,
        "replaced_fraction": counts.replaced_fraction,
        # Left out, not NaN, when the evaluation batches held no replaced (or no original) token.
        **({"replaced_auc": auc} if math.isfinite(auc) else {}),
    }
