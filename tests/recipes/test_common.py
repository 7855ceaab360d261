"""Shared fine-tuning start-up: weight loading with re-initialised top blocks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prefine.errors import PrefineError
from prefine.model import BertForPreTraining, BertForSequenceClassification, preset_config
from prefine.recipes.common import InitSource, load_initial_weights


def init_source() -> InitSource:
    config = preset_config("tiny", vocab_size=100, num_hidden_layers=3)
    torch.manual_seed(1)
    pretrained = BertForPreTraining(config)
    return InitSource(config, pretrained.state_dict(), None, "test weights", None, None, dataclasses.asdict(config))


def blocks_equal(left, right) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left.state_dict().values(), right.state_dict().values()))


def test_reinit_layers_keeps_fresh_weights_in_the_top_blocks_and_pooler():
    init = init_source()
    torch.manual_seed(2)
    model = BertForSequenceClassification(init.config, 2)
    fresh = BertForSequenceClassification(init.config, 2)
    fresh.load_state_dict(model.state_dict())
    load_initial_weights(model, init, from_scratch=False, announce=False, reinit_layers=1)
    loaded = BertForSequenceClassification(init.config, 2)
    load_initial_weights(loaded, init, from_scratch=False, announce=False)

    layers = model.bert.encoder.layer
    assert blocks_equal(layers[2], fresh.bert.encoder.layer[2]) and not blocks_equal(layers[2], loaded.bert.encoder.layer[2])
    assert blocks_equal(model.bert.pooler, fresh.bert.pooler)
    for index in (0, 1):
        assert blocks_equal(layers[index], loaded.bert.encoder.layer[index])
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, loaded.bert.embeddings.word_embeddings.weight)


def test_reinit_layers_beyond_the_model_is_a_clear_error():
    init = init_source()
    model = BertForSequenceClassification(init.config, 2)
    with pytest.raises(PrefineError, match="--reinit-layers 4 must be between 0 and the model's 3 blocks"):
        load_initial_weights(model, init, from_scratch=False, announce=False, reinit_layers=4)
