"""A toy pre-training objective written outside the package: spot the tokens that swapped places.

The masking pipeline already chooses ~15% of each batch's tokens (seeded by the data position, so
resume is exact). This objective puts the original tokens back and then rotates those chosen
tokens among themselves, `swap_shift` places along the batch; the encoder reads the result and
says, for every real token, whether it is out of place. A cheap cousin of ELECTRA's replaced-token
detection without a generator: every position teaches the encoder something.

docs/adding-an-objective.md walks through it; tests/objectives/test_toy_objective.py registers it,
pre-trains with it through `prefine pretrain --objective swapped-tokens` and fine-tunes from the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prefine.config import option
from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.interop import load_into
from prefine.model import IGNORE_LABEL, BertConfig
from prefine.model.bert import BertModel, init_bert_weights
from prefine.objectives import PretrainingObjective, register_objective


@dataclass
class SwapSettings:
    swap_shift: int = option(1, "swapped-tokens: how many chosen positions along each chosen token moves (1: into its neighbour's place)")

    def __post_init__(self) -> None:
        if self.swap_shift < 1:
            raise PrefineError(f"--swap-shift {self.swap_shift} must be at least 1")


class SwapDetector(nn.Module):
    """A BERT encoder at `.bert` (what fine-tuning loads from the run) and one logit per token: swapped or not."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.detector = nn.Linear(config.hidden_size, 1)
        init_bert_weights(self, config.initializer_range)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.detector(self.bert(input_ids, token_type_ids, attention_mask)).squeeze(-1)


def swap_tokens(batch: dict[str, Any], shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the batch's original tokens with the chosen ones rotated `shift` places among themselves, which tokens changed)."""
    labels = batch["mlm_labels"]
    chosen = labels != IGNORE_LABEL
    originals = torch.where(chosen, labels, batch["input_ids"])
    swapped_ids = originals.clone()
    swapped_ids[chosen] = labels[chosen].roll(shift)
    # A token that lands on an equal one is not out of place.
    return swapped_ids, swapped_ids != originals


class SwapTrainingTask:
    """The loop's view: the batches prefine.pretraining_data builds, the detection loss, held-out metrics."""

    metric_directions = {"swap_loss": "min", "swap_accuracy": "max"}

    def __init__(self, train_batches, eval_batches: list[dict[str, Any]], device: torch.device, settings: SwapSettings):
        self.train_batches, self.eval_batch_list, self.device, self.settings = train_batches, eval_batches, device, settings

    def start_position(self) -> DataPosition:
        return DataPosition(epoch=0, offset=0)

    def batch_at(self, position, rank: int, world_size: int):
        return self.train_batches.batch_at(position, rank, world_size)

    def _scored(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The detector's logits and the swapped labels at every real token of the batch."""
        batch = {key: value.to(self.device) for key, value in batch.items() if isinstance(value, torch.Tensor)}
        input_ids, swapped = swap_tokens(batch, self.settings.swap_shift)
        logits = model(input_ids, batch["token_type_ids"], batch["attention_mask"])
        real = batch["attention_mask"].bool()
        return logits[real], swapped[real].float()

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits, swapped = self._scored(model, batch)
        loss = F.binary_cross_entropy_with_logits(logits.float(), swapped)
        accuracy = float(((logits > 0).float() == swapped).float().mean())
        return loss, {"loss": float(loss.detach()), "swap_accuracy": accuracy}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        loss_sum = correct = tokens = 0.0
        for batch in self.eval_batch_list:
            logits, swapped = self._scored(model, batch)
            loss_sum += float(F.binary_cross_entropy_with_logits(logits.float(), swapped, reduction="sum"))
            correct += float(((logits > 0).float() == swapped).sum())
            tokens += swapped.numel()
        return {"swap_loss": loss_sum / max(tokens, 1), "swap_accuracy": correct / max(tokens, 1)}


class SwappedTokensObjective(PretrainingObjective):
    name = "swapped-tokens"
    help = "toy: spot the tokens that swapped places with other chosen tokens of the batch"
    sentence_pairs = False  # packed full sentences, masked as for masked LM (the masks choose what swaps)
    settings_config = SwapSettings
    architecture = "BertForSwappedTokenDetection"  # only prefine reads it; config.json keeps model_type "bert"
    headline_metric = "swap_accuracy"

    def build_model(self, config: BertConfig, settings: SwapSettings, saved_run: dict[str, Any] | None) -> nn.Module:
        return SwapDetector(config)

    def model_from_init(self, init, settings: SwapSettings) -> nn.Module:
        model = SwapDetector(init.config)
        report = load_into(model, init.state_dict)
        if report.newly_initialized:
            print(f"init: loaded {init.description}; newly initialized: {', '.join(report.newly_initialized)}")
        return model

    def training_task(self, train_batches, eval_batches, device, settings: SwapSettings) -> SwapTrainingTask:
        return SwapTrainingTask(train_batches, eval_batches, device, settings)

    def summary(self, last_eval: dict[str, float], run_dir: Path, train_batches, eval_batches) -> list[str]:
        if "swap_accuracy" not in last_eval:
            return []
        return [f"held-out swapped-token detection: accuracy {last_eval['swap_accuracy']:.1%}, loss {last_eval['swap_loss']:.3f}"]


def register() -> SwappedTokensObjective:
    objective = SwappedTokensObjective()
    register_objective(objective)
    return objective
