"""`--objective electra` (Clark et al. 2020): a small generator fills the masks, the encoder spots its replacements.

The model is `prefine.model.electra.ElectraPreTrainingModel`; this module declares everything
around it: the packed, masked data it reads, its own flags (`ElectraObjectiveConfig`: generator
size, loss weights, sampling), how a new model starts (a generator tied to the shared embeddings,
biases from the corpus) and how --init fills it, the loss `generator_weight` x MLM +
`discriminator_weight` x replaced-token BCE, its metrics, the checkpoint (the discriminator's
config plus the generator's shape) and the export as two Hugging Face folders.

Training statistics (loss, MLM accuracy, the discriminator's accuracy, precision and recall on
"replaced") come from outputs the model computes anyway, so logging them costs nothing.
Evaluation samples replacements with a fixed random stream, so its numbers are comparable from one
evaluation to the next, and adds the discriminator's ROC AUC, which moves while precision and
recall still read 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.config import from_dict
from prefine.errors import PrefineError
from prefine.interop.electra import export_electra_hf
from prefine.model import IGNORE_LABEL, BertConfig, count_parameters
from prefine.model.electra import (
    ElectraObjectiveConfig,
    ElectraPreTrainingModel,
    electra_checkpoint_config,
    electra_state_from_bert,
    generator_config,
    load_electra_state,
)
from prefine.objectives.interface import InitWeights, PretrainingObjective, register_objective
from prefine.objectives.masked_lm import PretrainingTask, masked_lm_summary

# ELECTRA's discriminator learns from a weak, noisy signal early on (which of ~13% of tokens a
# generator replaced); at mlm's 1e-3 it did not leave its prior (in a 45-minute SST-2 run its AUC
# fell back to chance while the rate was at its peak), after 15 minutes it fine-tuned 6.2 points
# below random init on SST-2, and on the built-in corpus to the majority class. At 3e-4
# (ELECTRA-Small's 5e-4 at batch 128 is about 2.5e-4 at prefine's 32 by square-root scaling) the
# same 15 minutes fine-tuned 4.4 points higher on SST-2 and 12 / 41 points higher on the built-in
# task with 10% / all of its labels (docs/electra.md, "Learning rate"). Still below mlm there.
ELECTRA_LEARNING_RATE = 3e-4

# Every 15-minute ELECTRA run with BERT's init in docs/electra.md (a mini on a 2-core CPU) ended
# below this held-out AUC, at 0.54-0.62, and each fine-tuned below random init with all the task's
# labels: the blocks had not yet learned anything that transfers. Passing it is no promise: the
# 45-minute run (0.67) stayed behind masked LM, and a --mimetic-init run (0.72) fine-tuned no
# better than the default ELECTRA run.
FIRST_PHASE_AUC = 0.65


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


def discriminator_summary(last_eval: dict, run_dir: Path) -> list[str]:
    """The end-of-run lines for an ELECTRA run: how well the discriminator spots replacements,
    and a note when it is still in the phase whose weights fine-tuned worse than random ones."""
    if "replaced_auc" not in last_eval:
        return []
    auc = last_eval["replaced_auc"]
    lines = [f"held-out replaced-token detection: ROC AUC {auc:.2f} (0.50 is chance), recall {last_eval.get('replaced_recall', 0.0):.1%}"]
    if auc < FIRST_PHASE_AUC:
        lines.append(
            f"note: the discriminator has barely started telling replaced tokens apart (AUC below {FIRST_PHASE_AUC}); in prefine's "
            "benchmarks such weights fine-tuned below random init when labels were plentiful. Train longer "
            f"(prefine pretrain --resume {run_dir} --max-time ...) or use --objective mlm, and check with "
            f"prefine compare --init {run_dir} --checkpoints all"
        )
    return lines


class ElectraObjective(PretrainingObjective):
    name = "electra"
    help = (
        "the same packed sentences and masks, a small generator fills the masks and the encoder learns to spot "
        "its replacements at every position (ELECTRA)"
    )
    settings_config = ElectraObjectiveConfig
    architecture = "ElectraPreTrainingModel"
    headline_metric = "mlm_accuracy"
    learning_rate = ELECTRA_LEARNING_RATE
    # Its generator head maps back to the embedding width before scoring the vocabulary.
    accepts_narrow_embeddings = True

    def new_model_settings(self, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        # The generator scores the vocabulary with the shared embedding table (ELECTRA's design).
        if overrides.get("tie_word_embeddings") is False:
            raise PrefineError(
                "--no-tie-word-embeddings does not apply to --objective electra: its generator scores the vocabulary with the "
                "shared embedding table; drop the flag"
            )
        return {**defaults, "tie_word_embeddings": True, **overrides}

    def build_model(self, config: BertConfig, settings: ElectraObjectiveConfig, saved_run: dict[str, Any] | None) -> nn.Module:
        # A resumed run rebuilds the generator it recorded (it may have come from an --init).
        if saved_run and saved_run.get("generator"):
            generator = from_dict(BertConfig, saved_run["generator"], "generator")
        else:
            generator = generator_config(config, settings.generator_size)
        return ElectraPreTrainingModel(config, generator, settings)

    def model_from_init(self, init: InitWeights, settings: ElectraObjectiveConfig) -> nn.Module:
        """The source's whole ELECTRA state where it has one (its generator's shape wins over --generator-size);
        otherwise its encoder becomes the discriminator and the generator starts fresh."""
        saved = init.electra
        if saved is not None and saved.generator_config is not None and saved.has_generator:
            generator, state = saved.generator_config, saved.state_dict
        else:
            generator = generator_config(init.config, settings.generator_size)
            state = saved.state_dict if saved is not None else electra_state_from_bert(init.state_dict)
        model = ElectraPreTrainingModel(init.config, generator, settings)
        fresh = load_electra_state(model, state)
        if fresh:
            print(f"init: loaded {init.description}; newly initialized: ELECTRA {', '.join(fresh)}")
        return model

    def start_from_token_frequencies(self, model: nn.Module, counts: torch.Tensor, mlm_probability: float) -> None:
        cast(ElectraPreTrainingModel, model).start_from_token_frequencies(counts, mlm_probability)

    def training_task(self, train_batches, eval_batches, device, settings: ElectraObjectiveConfig) -> ElectraPretrainingTask:
        return ElectraPretrainingTask(train_batches, eval_batches, device, settings)

    def checkpoint_config(self, model: nn.Module) -> dict[str, Any]:
        return electra_checkpoint_config(cast(ElectraPreTrainingModel, model))

    def run_sections(self, model: nn.Module, settings: ElectraObjectiveConfig) -> dict[str, Any]:
        return {"electra": settings, "generator": cast(ElectraPreTrainingModel, model).generator_config}

    def describe_model(self, model: nn.Module) -> list[str]:
        model = cast(ElectraPreTrainingModel, model)
        return [
            f"ELECTRA: discriminator {count_parameters(model.electra) / 1e6:.1f}M parameters (what fine-tuning starts from), "
            f"generator {model.generator_config.hidden_size} wide ({count_parameters(model.generator) / 1e6:.2f}M parameters "
            "besides the shared embeddings)"
        ]

    def summary(self, last_eval, run_dir: Path, train_batches, eval_batches) -> list[str]:
        return masked_lm_summary(last_eval, train_batches, eval_batches) + discriminator_summary(last_eval, run_dir)

    def export_hf(self, checkpoint: Path, tokenizer: Tokenizer, config_json: dict[str, Any], out_dir: Path) -> Path:
        """The discriminator to `out_dir`, the generator to `out_dir/generator` (prefine.interop.electra)."""
        if tokenizer.get_vocab_size() > config_json.get("vocab_size", 0):
            raise PrefineError(
                f"the tokenizer has {tokenizer.get_vocab_size()} tokens but the model embeds {config_json.get('vocab_size')}; "
                "restore the run's own tokenizer"
            )
        return export_electra_hf(checkpoint, tokenizer, config_json, out_dir)


register_objective(ElectraObjective())
