"""Objectives registered by a test are forgotten after it, with the data layouts they declared."""

from __future__ import annotations

import pytest

from prefine.objectives import interface
from prefine.pretraining_data import config as data_config


@pytest.fixture(autouse=True)
def restored_objective_registry():
    interface.all_objectives()  # the built-in objectives first, as the CLI would load them
    objectives, layouts = dict(interface._OBJECTIVES), set(data_config._SENTENCE_PAIR_OBJECTIVES)
    yield
    interface._OBJECTIVES.clear()
    interface._OBJECTIVES.update(objectives)
    data_config._SENTENCE_PAIR_OBJECTIVES.clear()
    data_config._SENTENCE_PAIR_OBJECTIVES.update(layouts)
