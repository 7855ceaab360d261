"""Gradient accumulation does not change pre-training: losses are per token over the whole global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prefine.data_position import DataPosition
from prefine.model import IGNORE_LABEL, BertForPreTraining, preset_config
from prefine.objectives.masked_lm import PretrainingTask
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, build_token_shards
from prefine.tokenizer import TokenizerConfig, train_tokenizer
from prefine.training import DistributedContext, TrainingConfig, train
from tests.conftest import synthetic_documents

CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
GLOBAL_BATCH = 32


class FixedGlobalBatchTask(PretrainingTask):
    """The pre-training task on one fixed global batch of 32 examples, served in micro-batches of any size."""

    def __init__(self, global_batch: dict, micro_batch: int):
        super().__init__(None, [], torch.device("cpu"))
        self.global_batch, self.micro_batch = global_batch, micro_batch

    def batch_at(self, position, rank, world_size):
        start = position.offset % GLOBAL_BATCH
        piece = {
            key: value[start : start + self.micro_batch] for key, value in self.global_batch.items() if isinstance(value, torch.Tensor)
        }
        piece["num_real_tokens"] = int(piece["attention_mask"].sum())
        return piece, DataPosition(position.epoch, position.offset + self.micro_batch)

    def evaluate(self, model):
        return {}


@pytest.fixture(scope="module")
def global_batch_and_vocab(tmp_path_factory):
    documents = synthetic_documents(150, seed=5)
    tokenizer = train_tokenizer((s for d in documents for s in d), TokenizerConfig(vocab_size=300, min_frequency=1), show_progress=False)
    shards = build_token_shards(documents, tokenizer, tmp_path_factory.mktemp("shards") / "shards")
    batches = PretrainingBatches.from_tokenizer(
        shards, tokenizer, PretrainingDataConfig(max_seq_length=32, objective="mlm+nsp"), seed=5, global_batch_size=GLOBAL_BATCH
    )
    batch, _ = batches.batch_at(DataPosition(0, 0), 0, 1)
    return batch, tokenizer.get_vocab_size()


def train_with(global_batch_and_vocab, run_dir: Path, accumulation: int) -> tuple[dict, list[dict]]:
    batch, vocab_size = global_batch_and_vocab
    torch.manual_seed(0)
    config = preset_config(
        "tiny",
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForPreTraining(config)
    training = TrainingConfig(
        max_steps=3,
        batch_size=GLOBAL_BATCH,
        gradient_accumulation_steps=accumulation,
        learning_rate=1e-3,
        log_every=1,
        eval_every=0,
        save_every=0,
        progress=False,
        num_threads=1,
    )
    train(model, FixedGlobalBatchTask(batch, GLOBAL_BATCH // accumulation), training, run_dir, {}, CPU)
    logs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "train/loss" in line]
    return {key: value.detach().clone() for key, value in model.state_dict().items()}, logs


def test_one_by_32_and_four_by_8_give_the_same_updates(global_batch_and_vocab, tmp_path):
    batch, _ = global_batch_and_vocab
    masked_per_micro = (batch["mlm_labels"] != IGNORE_LABEL).view(4, -1).sum(1)
    assert len(set(masked_per_micro.tolist())) > 1, "the test needs micro-batches with different numbers of masked tokens"

    whole_weights, whole_logs = train_with(global_batch_and_vocab, tmp_path / "1x32", accumulation=1)
    split_weights, split_logs = train_with(global_batch_and_vocab, tmp_path / "4x8", accumulation=4)
    for whole, split in zip(whole_logs, split_logs):
        # The gradient norm before clipping is the gradient itself, summarised: the same up to float rounding.
        assert split["train/grad_norm"] == pytest.approx(whole["train/grad_norm"], rel=1e-5, abs=1e-7)
        assert split["train/loss"] == pytest.approx(whole["train/loss"], rel=1e-5)
        assert split["train/mlm_accuracy"] == pytest.approx(whole["train/mlm_accuracy"], rel=1e-5)
    for name in whole_weights:
        torch.testing.assert_close(split_weights[name], whole_weights[name], rtol=1e-5, atol=1e-6)


class MeanPerMicroBatchTask:
    """A task without `loss_units` (the loop's older contract): each micro-batch's loss is its own mean."""

    def __init__(self, inner: FixedGlobalBatchTask):
        self.inner = inner

    def start_position(self):
        return self.inner.start_position()

    def batch_at(self, position, rank, world_size):
        return self.inner.batch_at(position, rank, world_size)

    def loss(self, model, batch):
        return self.inner.loss(model, batch)

    def evaluate(self, model):
        return {}


def test_a_task_without_loss_units_keeps_the_mean_of_micro_batch_means(global_batch_and_vocab, tmp_path):
    batch, vocab_size = global_batch_and_vocab
    torch.manual_seed(0)
    config = preset_config(
        "tiny",
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForPreTraining(config)
    task = MeanPerMicroBatchTask(FixedGlobalBatchTask(batch, 8))
    assert not hasattr(task, "loss_units")
    expected = sum(task.loss(model, task.batch_at(DataPosition(0, offset), 0, 1)[0])[0].item() for offset in range(0, 32, 8)) / 4
    training = TrainingConfig(
        max_steps=1, batch_size=GLOBAL_BATCH, gradient_accumulation_steps=4, log_every=1, eval_every=0, save_every=0, progress=False
    )
    train(model, task, training, tmp_path / "old", {}, CPU)
    logged = [json.loads(line) for line in (tmp_path / "old" / "metrics.jsonl").read_text().splitlines() if "train/loss" in line][0]
    assert logged["train/loss"] == pytest.approx(expected, rel=1e-6)


def test_a_growing_batch_scales_each_step_by_the_micro_batches_it_read(global_batch_and_vocab, tmp_path):
    """The first step of a batch ramp reads one micro-batch of 8; its update must be that of a plain batch of 8."""
    batch, vocab_size = global_batch_and_vocab

    def first_step(run_dir: Path, **training_overrides) -> dict:
        torch.manual_seed(0)
        config = preset_config(
            "tiny",
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            max_position_embeddings=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model = BertForPreTraining(config)
        values = {
            "max_steps": 4,
            "learning_rate": 1e-3,
            "log_every": 1,
            "eval_every": 0,
            "save_every": 0,
            "progress": False,
            "num_threads": 1,
        }
        training = TrainingConfig(**{**values, **training_overrides})
        for task in (FixedGlobalBatchTask(batch, 8), MeanPerMicroBatchTask(FixedGlobalBatchTask(batch, 8))):
            name = type(task).__name__
            train(model if name == "FixedGlobalBatchTask" else BertForPreTraining(config), task, training, run_dir / name, {}, CPU)
        return {
            name: [json.loads(line) for line in (run_dir / name / "metrics.jsonl").read_text().splitlines() if "train/loss" in line]
            for name in ("FixedGlobalBatchTask", "MeanPerMicroBatchTask")
        }

    plain = first_step(tmp_path / "plain", batch_size=8)
    ramped = first_step(tmp_path / "ramp", batch_size=GLOBAL_BATCH, gradient_accumulation_steps=4, batch_ramp=1.0)
    for name in plain:  # with and without loss_units
        assert ramped[name][0]["train/batch_size"] == 8 and ramped[name][-1]["train/batch_size"] > 8
        assert ramped[name][0]["train/loss"] == pytest.approx(plain[name][0]["train/loss"], rel=1e-6)
        assert ramped[name][0]["train/grad_norm"] == pytest.approx(plain[name][0]["train/grad_norm"], rel=1e-5)
