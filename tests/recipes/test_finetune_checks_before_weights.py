"""`prefine finetune` reads its data through the task before it loads any weights: a bad file fails in a second, not after loading a model.

Loading --init is made to fail the test; every refusal below must therefore come from the task's
`check_inputs`, and no run folder may be left behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prefine.cli import main
from prefine.recipes import common

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from shared_architecture_runs import toy_task_registered  # noqa: E402


@pytest.fixture(autouse=True)
def weights_must_not_load(monkeypatch):
    monkeypatch.setattr(common, "resolve_init", lambda source: pytest.fail("the weights were loaded before the data was checked"))


def finetune(tmp_path: Path, *arguments: str) -> int:
    return main(["finetune", "--init", str(tmp_path / "pretrained"), "--out", str(tmp_path / "run"), "--num-threads", "1", *arguments])


@pytest.mark.parametrize(
    "eval_rows, arguments, message",
    [
        ("", ["--label-column", "label"], "has no label column 'label'"),
        ("sentence\tstars\nfine\t5\n", ["--label-column", "stars", "--eval", "EVAL"], "has label '5' (line 2) not seen in training"),
        ("sentence\tstars\nfine\t5\n", ["--label-column", "stars", "--test", "EVAL", "--text-column", "text"], "has no text column 'text'"),
    ],
)
def test_classification_data_is_refused_before_any_weights_load(tmp_path, capsys, eval_rows, arguments, message):
    (tmp_path / "train.tsv").write_text("sentence\tstars\ngood\t1\nbad\t2\n", encoding="utf-8")
    (tmp_path / "eval.tsv").write_text(eval_rows, encoding="utf-8")
    arguments = [str(tmp_path / "eval.tsv") if argument == "EVAL" else argument for argument in arguments]
    assert finetune(tmp_path, "--train", str(tmp_path / "train.tsv"), *arguments) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_task_added_outside_the_package_checks_its_data_before_any_weights_load(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("one line\nanother line\n", encoding="utf-8")
    with toy_task_registered():
        code = finetune(tmp_path, "--task", "text-length", "--train", str(tmp_path / "train.txt"), "--eval", str(tmp_path / "missing.txt"))
    assert code == 2
    assert "missing.txt does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
