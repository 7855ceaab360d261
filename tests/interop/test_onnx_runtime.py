"""The ONNX Runtime backends of `load_run` (`--backend onnx|onnx-int8`): PyTorch's predictions, a cache reused and never stale.

Classification, NER and QA runs are fine-tuned a few steps from one tiny BERT and loaded twice,
as PyTorch runs them and with their encoder in ONNX Runtime; every prediction (labels, tags,
answers) must be identical and every probability or score within 1e-4, evaluation included (its
loss comes from the same head). int8 is checked on a tiny classifier trained until it is accurate,
against its own fp32 predictions. Generation and pre-training runs, and a missing onnx extra, are
refused in one line before any weights load.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.interop import onnx_runtime
from prefine.interop.onnx_runtime import OnnxEncoder, session_options
from tests.conftest import dead_pid, write_review_tsv, write_tiny_bert_run
from tests.interop.task_runs import write_task_inputs

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

STEPS = ["--max-steps", "3", "--batch-size", "8", "--num-threads", "1", "--no-progress", "--seed", "0"]
QA_SHAPE = ["--max-length", "64", "--doc-stride", "32", "--max-query-length", "16"]
TEXTS = ["the cat sees a good house", "bad road", "a quiet small tower in Paris today", "good", "the road to Seoul now", "Paris"]
NER_TEXTS = ["the cat sees Paris today", "a good house in Seoul", "Seoul", "the quiet road to Paris now in the small tower"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny pre-trained BERT and a run of each task fine-tuned from it for a few steps."""
    root = tmp_path_factory.mktemp("backend-runs")
    init = write_task_inputs(root)
    trainings = {
        "classification": ["--train", str(root / "labels.tsv"), *STEPS, "--max-seq-length", "32"],
        "ner": ["--task", "ner", "--train", str(root / "train.conll"), *STEPS, "--max-seq-length", "32"],
        "qa": ["--task", "qa", "--train", str(root / "train.json"), *STEPS, *QA_SHAPE],
        "generation": ["--task", "generation", "--train", str(root / "pairs.jsonl"), *STEPS, "--max-source-length", "32"],
    }
    runs = {"pretrain": init, "data": root}
    for name, arguments in trainings.items():
        assert main(["finetune", "--init", str(init), "--out", str(root / name), *arguments]) == 0, name
        runs[name] = root / name
    return runs


def both(run: Path, cache: Path, backend: str = "onnx"):
    torch_predictor = load_run(run)
    onnx_predictor = load_run(run, backend=backend, cache_dir=cache)
    assert isinstance(onnx_predictor.model.bert, OnnxEncoder)  # the encoder really is ONNX Runtime's
    return torch_predictor, onnx_predictor


def close(expected: float, actual: float) -> bool:
    return abs(expected - actual) <= 1e-4


def test_classification_on_onnx_gives_torchs_labels_and_probabilities(runs, tmp_path):
    reference, candidate = both(runs["classification"], tmp_path)
    records = [{"text": text} for text in TEXTS]
    expected, actual = reference.predict_records(records, batch_size=4), candidate.predict_records(records, batch_size=4)
    assert [row["label"] for row in actual] == [row["label"] for row in expected]
    for want, got in zip(expected, actual):
        assert all(close(want["probabilities"][name], got["probabilities"][name]) for name in want["probabilities"])
    scored_torch = reference.evaluate_source(str(runs["data"] / "labels.tsv"), 8).metrics
    scored_onnx = candidate.evaluate_source(str(runs["data"] / "labels.tsv"), 8).metrics
    assert scored_onnx.keys() == scored_torch.keys() and all(close(scored_torch[k], scored_onnx[k]) for k in scored_torch)


def test_ner_on_onnx_gives_torchs_entities_and_scores(runs, tmp_path):
    reference, candidate = both(runs["ner"], tmp_path)
    records = [{"text": text} for text in NER_TEXTS]
    expected, actual = reference.predict_records(records, batch_size=3), candidate.predict_records(records, batch_size=3)
    assert json.dumps(expected, sort_keys=True) != "[]"

    def without_scores(rows):
        return json.loads(json.dumps(rows, sort_keys=True), parse_float=lambda value: 0.0)

    assert without_scores(actual) == without_scores(expected)  # the same tags, spans and entities
    flat_expected = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", json.dumps(expected, sort_keys=True))
    flat_actual = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", json.dumps(actual, sort_keys=True))
    assert len(flat_expected) == len(flat_actual) > 0
    assert all(close(float(want), float(got)) for want, got in zip(flat_expected, flat_actual))
    # Evaluation's loss is computed by the head from the ONNX encoder's outputs.
    scored_torch = reference.evaluate_source(str(runs["data"] / "train.conll"), 8).metrics
    scored_onnx = candidate.evaluate_source(str(runs["data"] / "train.conll"), 8).metrics
    assert scored_onnx.keys() == scored_torch.keys() and all(close(scored_torch[k], scored_onnx[k]) for k in scored_torch)


def test_qa_on_onnx_gives_torchs_answers_and_scores(runs, tmp_path):
    reference, candidate = both(runs["qa"], tmp_path)
    records = [
        {"question": "What color is the cat?", "context": "It was a quiet day. The cat is red."},
        {"question": "What color is the box?", "context": "It was a quiet day. The box is green and small. The sky is blue."},
    ]
    expected, actual = reference.predict_records(records, batch_size=2), candidate.predict_records(records, batch_size=2)
    without_scores = json.loads(json.dumps(actual), parse_float=lambda value: 0.0)
    assert without_scores == json.loads(json.dumps(expected), parse_float=lambda value: 0.0)
    flat_expected = re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", json.dumps(expected))
    flat_actual = re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", json.dumps(actual))
    assert len(flat_expected) == len(flat_actual) > 0
    assert all(close(float(want), float(got)) for want, got in zip(flat_expected, flat_actual))
    scored_torch = reference.evaluate_source(str(runs["data"] / "train.json"), 8).metrics
    scored_onnx = candidate.evaluate_source(str(runs["data"] / "train.json"), 8).metrics
    assert scored_onnx.keys() == scored_torch.keys() and all(close(scored_torch[k], scored_onnx[k]) for k in scored_torch)


# A tiny classifier trained to ~100% on reviews holding one sentiment word: fp32 and int8 must
# agree on at least this share of held-out reviews. Quantization moves logits by a few percent of
# their size, so only reviews the model is unsure of can flip; on a model this sure of its
# answers 97% leaves room for a few such reviews but fails a quantization that scrambles the
# weights (a broken scale or zero point gives chance, 50%) or an int8 graph that drops a layer.
INT8_AGREEMENT = 0.97


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("int8")
    train = write_review_tsv(root / "train.tsv", 400, seed=1)
    held_out = write_review_tsv(root / "test.tsv", 300, seed=2)
    init = write_tiny_bert_run(root / "tiny-bert", train.read_text().splitlines(), vocab_size=200)
    arguments = ["--train", str(train), "--max-steps", "150", "--batch-size", "16", "--learning-rate", "1e-3"]
    flags = ["--num-threads", "1", "--no-progress", "--seed", "0", "--max-seq-length", "32"]
    assert main(["finetune", "--init", str(init), "--out", str(root / "run"), *arguments, *flags]) == 0
    return root / "run", held_out


def test_int8_agrees_with_fp32_on_a_trained_model(trained_classifier, tmp_path):
    run, held_out = trained_classifier
    texts = [line.split("\t")[0] for line in held_out.read_text().splitlines()[1:]]
    labels = [int(line.split("\t")[1]) for line in held_out.read_text().splitlines()[1:]]
    fp32 = [row["label"] for row in load_run(run).predict_records([{"text": t} for t in texts])]
    int8_predictor = load_run(run, backend="onnx-int8", cache_dir=tmp_path)
    graphs = list((tmp_path / "onnx").glob("*/*-int8.onnx"))
    assert graphs and isinstance(int8_predictor.model.bert, OnnxEncoder)
    assert any(node.op_type in {"MatMulInteger", "DynamicQuantizeMatMul"} for node in _nodes(graphs[0]))  # really int8
    int8 = [row["label"] for row in int8_predictor.predict_records([{"text": t} for t in texts])]
    accuracy = np.mean([str(label) == predicted for label, predicted in zip(labels, fp32)])
    assert accuracy >= 0.9, f"the tiny classifier did not learn ({accuracy:.2f}); the agreement below would say nothing"
    agreement = np.mean([a == b for a, b in zip(fp32, int8)])
    assert agreement >= INT8_AGREEMENT, agreement


def _nodes(path: Path):
    import onnx

    return onnx.load(str(path)).graph.node


def test_the_cache_is_reused_and_a_different_checkpoint_gets_its_own_graph(runs, tmp_path, monkeypatch):
    load_run(runs["classification"], backend="onnx", cache_dir=tmp_path)
    (folder,) = (tmp_path / "onnx").iterdir()
    built = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert built

    def no_export(*args, **kwargs):
        raise AssertionError("the cached graph was built again")

    monkeypatch.setattr(onnx_runtime, "write_onnx", no_export)
    load_run(runs["classification"], backend="onnx", cache_dir=tmp_path)
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == built
    monkeypatch.undo()

    # Same task and shape, other weights: the run fine-tuned one step further from the same start.
    other = runs["data"] / "classification-more"
    arguments = ["--train", str(runs["data"] / "labels.tsv"), *STEPS[:-2], "--seed", "1", "--max-seq-length", "32"]
    assert main(["finetune", "--init", str(runs["pretrain"]), "--out", str(other), *arguments]) == 0
    stale, fresh = load_run(runs["classification"]), load_run(other, backend="onnx", cache_dir=tmp_path)
    assert len(list((tmp_path / "onnx").iterdir())) == 2
    # ... and it computes the new weights, not the cached ones.
    records = [{"text": text} for text in TEXTS]
    expected = load_run(other).predict_records(records)
    got = [list(row["probabilities"].values()) for row in fresh.predict_records(records)]
    assert np.abs(np.array(got) - np.array([list(row["probabilities"].values()) for row in expected])).max() <= 1e-4
    assert stale.predict_records(records) != expected


def test_a_graph_half_written_by_a_killed_process_is_removed_and_a_live_writers_kept(runs, tmp_path):
    import os

    load_run(runs["classification"], backend="onnx", cache_dir=tmp_path)
    (folder,) = (tmp_path / "onnx").iterdir()
    dead = folder / f".first-token.onnx.{dead_pid()}-0badc0de.partial"  # what a kill -9 leaves behind
    alive = folder / f".first-token.onnx.{os.getpid()}-0badc0de.partial"
    for path in (dead, alive):
        path.write_bytes(b"half a graph")
    load_run(runs["classification"], backend="onnx", cache_dir=tmp_path)
    assert not dead.exists() and alive.exists()


@pytest.mark.parametrize(("run", "words"), [("generation", "a generation run does not"), ("pretrain", "is a pretrain run")])
def test_runs_the_backend_cannot_compute_are_refused_in_one_line(runs, tmp_path, run, words):
    with pytest.raises(PrefineError, match=words) as refused:
        load_run(runs[run], backend="onnx", cache_dir=tmp_path)
    assert "\n" not in str(refused.value) and "--backend torch" in str(refused.value)
    assert not (tmp_path / "onnx").exists()


def test_a_missing_onnx_extra_is_one_line_naming_it(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(PrefineError) as refused:
        load_run(runs["classification"], backend="onnx-int8", cache_dir=tmp_path)
    assert str(refused.value) == "--backend onnx-int8 needs the onnx extra (onnxruntime is missing): pip install 'prefine[onnx]'"


def test_sessions_get_the_thread_count_and_onnx_runtimes_own_spinning(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's policy no longer reaches ONNX Runtime's workers
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    with pytest.raises(RuntimeError, match="does not have configuration"):  # unset: ONNX Runtime's default, spinning
        options.get_session_config_entry("session.intra_op.allow_spinning")


def test_the_encoder_takes_pytorchs_threads_and_a_second_model_gets_as_many(runs, tmp_path):
    import torch

    torch.set_num_threads(2)
    first = load_run(runs["classification"], backend="onnx", cache_dir=tmp_path)
    assert torch.get_num_threads() == 1  # PyTorch is left with the head
    second = load_run(runs["qa"], backend="onnx", cache_dir=tmp_path)
    for predictor in (first, second):
        for session in predictor.model.bert.sessions.values():
            assert session.get_session_options().intra_op_num_threads == 2
