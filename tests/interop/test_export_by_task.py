"""`prefine export` rebuilds every run with the task that trained it, even where two tasks share a transformers class.

The toy text-length task (tests/tasks/text_length_task.py, registered outside the package) and a
classification run in regression mode both export a BertForSequenceClassification with one output.
Each export must carry its own task's transformers keys (the toy names its output "length"), and
transformers, loading the folder, must answer what the run's own prefine predictor answers.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import TOKENIZER_DIR, model_checkpoint_of
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.recipes.export import export_hf
from prefine.tasks import interface

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from shared_architecture_runs import TEXTS, toy_task_registered, train_runs  # noqa: E402

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(text-length run, regression run), with the toy task registered while this module's tests run."""
    with toy_task_registered():
        yield train_runs(tmp_path_factory.mktemp("two-tasks"))


def transformers_outputs(folder: Path) -> tuple[dict, list[float]]:
    """The exported config.json and the one output transformers computes for each of TEXTS."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    return json.loads((folder / "config.json").read_text()), logits[:, 0].tolist()


def test_each_run_exports_through_its_own_task_although_both_are_sequence_classifiers(runs, tmp_path):
    length_run, regression_run = runs
    records = [{"text": text} for text in TEXTS]

    config, outputs = transformers_outputs(export_hf(length_run, tmp_path / "length-hf"))
    assert config["architectures"] == ["BertForSequenceClassification"]
    # The toy task's own keys: classification would have written no label name for a regression.
    assert config["id2label"] == {"0": "length"} and config["problem_type"] == "regression" and config["num_labels"] == 1
    expected = [record["length"] for record in load_run(length_run).predict_records(records)]
    assert outputs == pytest.approx(expected, abs=1e-4)

    config, outputs = transformers_outputs(export_hf(regression_run, tmp_path / "regression-hf"))
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "LABEL_0"} and config["problem_type"] == "regression"
    expected = [record["score"] for record in load_run(regression_run).predict_records(records)]
    assert outputs == pytest.approx(expected, abs=1e-4)


def test_a_checkpoint_copied_out_of_its_run_still_exports_through_its_task(runs, tmp_path):
    length_run, _ = runs
    checkpoint = model_checkpoint_of(length_run)
    assert json.loads((checkpoint / "config.json").read_text())["task"] == "text-length"
    loose = tmp_path / "loose-checkpoint"
    shutil.copytree(checkpoint, loose)
    shutil.copytree(length_run / TOKENIZER_DIR, loose / TOKENIZER_DIR)
    config = json.loads((export_hf(loose, tmp_path / "hf") / "config.json").read_text())
    assert config["id2label"] == {"0": "length"}


def test_a_run_of_a_task_not_registered_is_refused_rather_than_exported_as_another_task(runs, tmp_path, monkeypatch):
    length_run, _ = runs
    monkeypatch.delitem(interface._TASKS, "text-length")
    with pytest.raises(PrefineError, match="unknown task 'text-length'"):
        export_hf(length_run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
