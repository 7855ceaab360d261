"""`prefine predict / evaluate --backend onnx|onnx-int8`: the commands' answers on ONNX Runtime, and their refusals.

A tiny classifier is fine-tuned a few steps; predicting and scoring it with --backend onnx must
give the labels and (within 1e-4) the probabilities and scores of the default PyTorch backend,
with the graph cached under $PREFINE_CACHE and nothing written into the run folder. A
pre-training run and a missing onnx extra are refused in one line. The output file is written
whole, and the half-written one an earlier, killed predict left beside it is removed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prefine.cli import main
from tests.conftest import dead_pid, write_review_tsv, write_tiny_bert_run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backend-cli")
    train = write_review_tsv(root / "train.tsv", 64, seed=1)
    init = write_tiny_bert_run(root / "tiny-bert", train.read_text().splitlines(), vocab_size=200)
    flags = ["--max-steps", "3", "--batch-size", "8", "--num-threads", "1", "--no-progress", "--seed", "0", "--max-seq-length", "32"]
    assert main(["finetune", "--init", str(init), "--train", str(train), "--out", str(root / "run"), *flags]) == 0
    return {"run": root / "run", "pretrain": init, "data": train}


def listing(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def predictions(run: Path, data: Path, out: Path, *backend: str) -> list[dict]:
    assert main(["predict", str(run), "--data", str(data), "--output", str(out), *backend]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_predict_on_onnx_writes_torchs_labels_and_probabilities_and_leaves_the_run_alone(run, tmp_path):
    before = listing(run["run"])
    expected = predictions(run["run"], run["data"], tmp_path / "torch.jsonl")
    actual = predictions(run["run"], run["data"], tmp_path / "onnx.jsonl", "--backend", "onnx")
    assert len(actual) == len(expected) == 64
    assert [row["label"] for row in actual] == [row["label"] for row in expected]
    for want, got in zip(expected, actual):
        assert max(abs(want["probabilities"][name] - got["probabilities"][name]) for name in want["probabilities"]) <= 1e-4
    assert list((tmp_path / "cache" / "onnx").glob("*/*.onnx"))  # the graph is cached under $PREFINE_CACHE ...
    assert listing(run["run"]) == before  # ... and nothing in the run folder changed


def test_predict_removes_the_half_file_a_killed_predict_left_and_writes_its_own_whole(run, tmp_path):
    import os

    out = tmp_path / "predictions.jsonl"
    killed = tmp_path / f".predictions.jsonl.{dead_pid()}-0badc0de.partial"  # a predict killed halfway through writing
    writing = tmp_path / f".predictions.jsonl.{os.getpid()}-0badc0de.partial"  # another predict, still running
    for path in (killed, writing):
        path.write_text('{"label": "half')
    assert len(predictions(run["run"], run["data"], out)) == 64
    assert sorted(path.name for path in tmp_path.iterdir()) == [writing.name, "predictions.jsonl"]


def test_an_output_in_a_missing_folder_is_refused_before_the_run_loads(run, tmp_path, capsys, monkeypatch):
    import prefine.recipes.predict as predict_recipe

    monkeypatch.setattr(predict_recipe, "load_run", lambda *args: pytest.fail("the run loaded before --output was checked"))
    out = tmp_path / "missing" / "out.jsonl"
    assert main(["predict", str(run["run"]), "--data", str(run["data"]), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not exist; create it" in error and "Traceback" not in error
    assert not out.parent.exists()


def scores(capsys, *arguments: str) -> dict:
    assert main(["evaluate", *arguments]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_on_onnx_prints_torchs_scores_and_int8_scores_too(run, capsys):
    expected = scores(capsys, str(run["run"]), "--data", str(run["data"]))
    actual = scores(capsys, str(run["run"]), "--data", str(run["data"]), "--backend", "onnx")
    assert actual.keys() == expected.keys() and all(abs(expected[key] - actual[key]) <= 1e-4 for key in expected)
    int8 = scores(capsys, str(run["run"]), "--data", str(run["data"]), "--backend", "onnx-int8")
    assert int8.keys() == expected.keys() and 0.0 <= int8["accuracy"] <= 1.0


def test_evaluate_builds_the_int8_graph_in_the_cache(run, capsys, tmp_path):
    scores(capsys, str(run["run"]), "--data", str(run["data"]), "--backend", "onnx-int8")
    assert [path.name for path in (tmp_path / "cache" / "onnx").glob("*/*-int8.onnx")] == ["first-token-int8.onnx"]


def test_a_pretraining_run_is_refused_in_one_line(run, capsys):
    assert main(["predict", str(run["pretrain"]), "--data", str(run["data"]), "--backend", "onnx"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--backend onnx runs fine-tuned runs" in error and "--backend torch" in error


def test_an_unknown_backend_is_refused_by_the_parser(run, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", str(run["run"]), "--data", str(run["data"]), "--backend", "tensorrt"])
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_missing_onnx_extra_is_one_line_naming_it(run, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert main([command, str(run["run"]), "--data", str(run["data"]), "--backend", "onnx"]) == 2
    assert capsys.readouterr().err == (
        "prefine: error: --backend onnx needs the onnx extra (onnxruntime is missing): pip install 'prefine[onnx]'\n"
    )
