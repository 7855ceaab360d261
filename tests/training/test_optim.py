"""The optimizer's parameter groups: layer-wise learning-rate decay, and the schedule applied to every group."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prefine.errors import PrefineError
from prefine.model import BertConfig
from prefine.model.encoder_decoder import BertEncoderDecoder
from prefine.model.heads import BertForSequenceClassification
from prefine.training.config import TrainingConfig
from prefine.training.optim import build_optimizer, build_scheduler, layer_depths, learning_rate_multiplier

CONFIG = BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, max_position_embeddings=20
)


def learning_rates(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    group_of = {id(parameter): group["lr"] for group in optimizer.param_groups for parameter in group["params"]}
    return {name: group_of[id(parameter)] for name, parameter in model.named_parameters() if parameter.requires_grad}


def test_each_block_down_gets_the_decay_times_the_rate_above_and_heads_the_full_rate():
    model = BertForSequenceClassification(CONFIG, num_labels=2)
    rates = learning_rates(model, build_optimizer(model, TrainingConfig(learning_rate=1e-3, layer_lr_decay=0.5), torch.device("cpu")))
    assert rates["classifier.weight"] == rates["bert.pooler.dense.weight"] == pytest.approx(1e-3)
    for block, expected in ((2, 5e-4), (1, 2.5e-4), (0, 1.25e-4)):
        assert rates[f"bert.encoder.layer.{block}.attention.self.query.weight"] == pytest.approx(expected)
        assert rates[f"bert.encoder.layer.{block}.output.LayerNorm.bias"] == pytest.approx(expected)
    assert rates["bert.embeddings.word_embeddings.weight"] == rates["bert.embeddings.LayerNorm.weight"] == pytest.approx(6.25e-5)


def test_without_decay_there_are_the_usual_two_groups_at_one_rate():
    model = BertForSequenceClassification(CONFIG, num_labels=2)
    optimizer = build_optimizer(model, TrainingConfig(learning_rate=1e-3), torch.device("cpu"))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0]
    assert {group["lr"] for group in optimizer.param_groups} == {1e-3}


def test_the_schedule_scales_every_group_alike_and_the_logged_rate_is_the_top_one():
    model = BertForSequenceClassification(CONFIG, num_labels=2)
    config = TrainingConfig(learning_rate=1e-3, layer_lr_decay=0.8, max_steps=10, warmup_steps=4)
    optimizer = build_optimizer(model, config, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, config, lambda: 0.0)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    rates = learning_rates(model, optimizer)
    peak = 1e-3 * learning_rate_multiplier(2, config)
    assert 0 < peak < 1e-3  # still warming up
    assert scheduler.get_last_lr()[0] == pytest.approx(peak)
    assert rates["classifier.weight"] == pytest.approx(peak)
    assert rates["bert.embeddings.word_embeddings.weight"] == pytest.approx(peak * 0.8**4)


def test_a_decayed_block_moves_less_in_an_adam_step():
    torch.manual_seed(0)
    model = BertForSequenceClassification(CONFIG, num_labels=2)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = build_optimizer(model, TrainingConfig(learning_rate=1e-2, layer_lr_decay=0.1, weight_decay=0.0), torch.device("cpu"))
    ids = torch.randint(0, CONFIG.vocab_size, (4, 8))
    model(ids, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    optimizer.step()
    moved = {name: (parameter.detach() - before[name]).abs().max().item() for name, parameter in model.named_parameters()}
    # Adam's first step moves an element by about its learning rate, whatever the gradient's size
    # (a little less where the gradient is near epsilon): the largest move in a matrix is its rate.
    assert moved["classifier.weight"] == pytest.approx(1e-2, rel=0.05)
    assert moved["bert.encoder.layer.2.intermediate.dense.weight"] == pytest.approx(1e-3, rel=0.05)
    assert moved["bert.encoder.layer.0.intermediate.dense.weight"] == pytest.approx(1e-5, rel=0.05)


def test_encoder_decoder_blocks_are_found_on_both_sides():
    depths = layer_depths(BertEncoderDecoder(CONFIG))
    assert depths["encoder.embeddings.word_embeddings.weight"] == depths["decoder.bert.embeddings.word_embeddings.weight"] == 0
    assert (
        depths["encoder.encoder.layer.1.attention.self.key.weight"]
        == depths["decoder.bert.encoder.layer.1.crossattention.self.key.weight"]
        == 2
    )
    assert depths["decoder.cls.predictions.transform.dense.weight"] == 4


def test_an_embedding_projection_sits_with_the_embeddings():
    # ELECTRA-Small's layout: 8-wide embeddings projected up to the 16-wide blocks.
    depths = layer_depths(BertForSequenceClassification(dataclasses.replace(CONFIG, embedding_size=8), num_labels=2))
    assert depths["bert.embeddings_project.weight"] == depths["bert.embeddings.word_embeddings.weight"] == 0
    assert depths["bert.encoder.layer.0.output.dense.weight"] == 1


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_a_decay_outside_zero_to_one_is_a_clear_error(decay):
    with pytest.raises(PrefineError, match="--layer-lr-decay"):
        TrainingConfig(layer_lr_decay=decay)
