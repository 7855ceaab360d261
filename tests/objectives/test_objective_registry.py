"""The objective registry: built-ins, one clear error for an unknown name, and a registration that reaches the CLI and the data."""

from __future__ import annotations

import pytest

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.objectives import get_objective, objective_names, objective_of_checkpoint, register_objective
from prefine.objectives.masked_lm import MaskedLMObjective
from prefine.pretraining_data import PretrainingDataConfig
from tests.objectives import toy_objective

BUILTINS = ["mlm", "mlm+nsp", "electra"]


def test_the_builtin_objectives_are_registered_in_order():
    assert objective_names()[:3] == BUILTINS
    assert [get_objective(name).name for name in BUILTINS] == BUILTINS


def test_an_unknown_objective_is_one_line_that_names_the_choices():
    with pytest.raises(PrefineError) as raised:
        get_objective("mlm+sop")
    assert str(raised.value) == "unknown objective 'mlm+sop'; choose one of mlm, mlm+nsp, electra"


def test_the_cli_refuses_an_unknown_objective_naming_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["pretrain", "--corpus", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "run"), "--objective", "mlm+sop"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--objective: invalid choice: 'mlm+sop'" in error and "'mlm', 'mlm+nsp', 'electra'" in error
    assert not (tmp_path / "run").exists()


def test_each_builtin_declares_the_data_layout_the_pipeline_builds():
    for name in BUILTINS:
        assert PretrainingDataConfig(objective=name).sentence_pairs is get_objective(name).sentence_pairs
    assert [name for name in BUILTINS if get_objective(name).sentence_pairs] == ["mlm+nsp"]


def test_a_registered_objective_becomes_a_choice_with_its_help_and_flags(capsys, monkeypatch):
    toy_objective.register()
    monkeypatch.setenv("COLUMNS", "1000")  # one help entry per line
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    printed = capsys.readouterr().out
    assert "--objective {mlm,mlm+nsp,electra,swapped-tokens}" in printed
    assert "swapped-tokens: toy: spot the tokens that swapped places" in printed
    assert "swapped-tokens objective (with --objective swapped-tokens):" in printed and "--swap-shift SWAP_SHIFT" in printed


def test_an_objective_that_needs_sentence_pairs_gets_them():
    class PairedSwaps(MaskedLMObjective):
        name = "paired-mlm"
        help = "masked LM on sentence pairs, a test's own"
        sentence_pairs = True

    register_objective(PairedSwaps())
    assert PretrainingDataConfig(objective="paired-mlm").sentence_pairs
    with pytest.raises(PrefineError, match="--separate-documents lays out packed documents"):
        PretrainingDataConfig(objective="paired-mlm", separate_documents=True)


def test_a_checkpoint_names_its_objective_and_older_ones_are_known_by_architecture():
    assert objective_of_checkpoint({"pretraining_objective": "electra", "model_type": "electra"}) is get_objective("electra")
    assert objective_of_checkpoint({"architectures": ["ElectraPreTrainingModel"]}) is get_objective("electra")
    assert objective_of_checkpoint({"architectures": ["BertForPreTraining"]}).architecture == "BertForPreTraining"
    assert objective_of_checkpoint({"architectures": ["BertForSequenceClassification"]}) is None
    with pytest.raises(PrefineError, match="unknown objective 'gone'"):
        objective_of_checkpoint({"pretraining_objective": "gone"})
