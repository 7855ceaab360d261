"""`prefine export --format onnx`: a graph ONNX Runtime runs with prefine's outputs, for every task with one encoder forward.

Classification, regression, NER and QA runs are fine-tuned a few steps from one tiny BERT and
exported; ONNX Runtime then runs the exported model.onnx on two batches of different shapes, both
padded and tokenized with the exported tokenizer files, and every output must match what the
run's own model computes (its usual, unpadding forward) within 1e-4. Generation and pre-training
runs are refused in one line with nothing written, and so is a missing onnx extra.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.recipes.export import export_onnx
from tests.interop.task_runs import write_task_inputs

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

QA_SHAPE = ["--max-length", "64", "--doc-stride", "32", "--max-query-length", "16"]  # within the tiny BERT's 64 positions
STEPS = ["--max-steps", "3", "--batch-size", "8", "--num-threads", "1", "--no-progress", "--seed", "0", "--max-seq-length", "32"]
TEXTS = (["the cat sees a good house", "bad road"], ["a quiet small tower in Paris today", "good", "the road to Seoul now"])
QUESTIONS = (
    [("What color is the cat?", "It was a quiet day. The cat is red."), ("What?", "The box is blue.")],
    [("What color is the box?", "It was a quiet day. The box is green and small."), ("Which?", "Red."), ("Color?", "The cat is blue.")],
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny pre-trained BERT and a run of each task fine-tuned from it."""
    root = tmp_path_factory.mktemp("onnx-runs")
    init = write_task_inputs(root)

    trainings = {
        "classification": ["--train", str(root / "labels.tsv"), *STEPS],
        "regression": ["--train", str(root / "scores.tsv"), *STEPS],
        "ner": ["--task", "ner", "--train", str(root / "train.conll"), *STEPS],
        "qa": ["--task", "qa", "--train", str(root / "train.json"), *STEPS[:-2], *QA_SHAPE],
        "generation": ["--task", "generation", "--train", str(root / "pairs.jsonl"), *STEPS[:-2], "--max-source-length", "32"],
    }
    runs = {"pretrain": init}
    for name, arguments in trainings.items():
        assert main(["finetune", "--init", str(init), "--out", str(root / name), *arguments]) == 0, name
        runs[name] = root / name
    return runs


def encode(folder: Path, inputs: list) -> dict[str, np.ndarray]:
    """A padded batch from the exported tokenizer files, as a user of the folder would make it."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"))
    encodings = tokenizer.encode_batch(inputs)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def prefine_outputs(run: Path, batch: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """The run's own model, loaded as `prefine predict` loads it, on the same batch."""
    model = load_run(run).model
    with torch.inference_mode():
        output = model(**{name: torch.from_numpy(values) for name, values in batch.items()})
    return [getattr(output, name).float().numpy() for name in names]


@pytest.mark.parametrize(
    ("task", "outputs", "inputs"),
    [
        ("classification", ["logits"], TEXTS),
        ("regression", ["logits"], TEXTS),
        ("ner", ["logits"], TEXTS),
        ("qa", ["start_logits", "end_logits"], QUESTIONS),
    ],
)
def test_onnx_runtime_matches_prefine_on_batches_of_two_shapes(runs, tmp_path, task, outputs, inputs):
    folder = tmp_path / f"{task}-onnx"
    exported = export_onnx(runs[task], folder)
    assert exported.outputs == tuple(outputs) and exported.max_difference <= 1e-4
    assert {"model.onnx", "config.json", "tokenizer.json"} <= {path.name for path in folder.iterdir()}
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in session.get_outputs()] == outputs
    shapes = []
    for batch_inputs in inputs:
        batch = encode(folder, batch_inputs)
        assert batch["attention_mask"].min() == 0  # padded: the graph must mask, not just run
        shapes.append(batch["input_ids"].shape)
        got = session.run(None, batch)
        for expected, actual in zip(prefine_outputs(runs[task], batch, outputs), got, strict=True):
            assert actual.shape == expected.shape
            assert np.abs(actual.astype(np.float64) - expected).max() <= 1e-4
    assert shapes[0] != shapes[1] and shapes[0][0] != shapes[1][0] and shapes[0][1] != shapes[1][1]


def test_the_config_carries_the_task_and_its_labels(runs, tmp_path):
    config = json.loads((export_onnx(runs["ner"], tmp_path / "ner").out_dir / "config.json").read_text())
    assert config["task"] == "ner" and config["onnx_outputs"] == ["logits"]
    assert sorted(config["label2id"]) == ["B-LOC", "O"] and config["num_labels"] == 2


def test_the_command_writes_the_folder(runs, tmp_path, capsys):
    assert main(["export", str(runs["classification"]), "--format", "onnx", "--out", str(tmp_path / "out")]) == 0
    assert "model.onnx" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.onnx").is_file()


@pytest.mark.parametrize(("run", "words"), [("generation", "encoder-decoder"), ("pretrain", "pre-training run")])
def test_generation_and_pretraining_runs_are_refused_in_one_line_and_nothing_is_written(runs, tmp_path, capsys, run, words):
    out = tmp_path / "nested" / "out"
    assert main(["export", str(runs[run]), "--format", "onnx", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("prefine: error: ") and words in error and "--format hf" in error
    assert list(tmp_path.iterdir()) == []


def test_a_missing_onnx_extra_is_one_line_naming_it_and_writes_nothing(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert main(["export", str(runs["classification"]), "--format", "onnx", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error == "prefine: error: --format onnx needs the onnx extra (onnxruntime is missing): pip install 'prefine[onnx]'\n"
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_disagrees_with_prefine_is_not_written(runs, tmp_path, monkeypatch):
    from prefine.interop import onnx_export

    def wrong(path, batch):
        return [np.zeros(1, dtype=np.float32)]  # a shape no output of the run has

    monkeypatch.setattr(onnx_export, "onnx_outputs", wrong)
    with pytest.raises(PrefineError, match="differ from prefine's"):
        export_onnx(runs["classification"], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_staging_folder_a_killed_export_left_is_removed_and_a_live_one_kept(runs, tmp_path):
    # What kill -9 during an earlier export leaves beside --out: its staging folder, named with its pid.
    dead = tmp_path / ".out.partial-999999999-abc"  # above any pid the kernel hands out
    live = tmp_path / f".out.partial-{os.getpid()}-def"  # a concurrent export still writing
    for folder in (dead, live):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"partial")
    export_onnx(runs["classification"], tmp_path / "out")
    assert not dead.exists() and live.exists() and (tmp_path / "out" / "model.onnx").is_file()


@pytest.mark.parametrize(
    "traced_lengths",
    [
        pytest.param((6, 6), id="no-padding"),  # the usual forward would drop the mask altogether
        pytest.param((64, 2, 2, 2, 2), id="length-groups"),  # the usual forward would split rows into grids of frozen widths
    ],
)
def test_the_graph_is_the_padded_forward_whatever_batch_it_is_traced_on(runs, tmp_path, traced_lengths):
    from prefine.interop.onnx_export import padded_batch, write_onnx

    model = load_run(runs["classification"]).model
    vocab, types = model.config.vocab_size, model.config.type_vocab_size
    later = [padded_batch(lengths, vocab, types, seed=1) for lengths in ((7, 2, 4), (30, 3))]
    # write_onnx checks every batch it is given in ONNX Runtime against the model's usual forward.
    worst = write_onnx(model, tmp_path / "model.onnx", ["logits"], [padded_batch(traced_lengths, vocab, types), *later])
    assert worst <= 1e-4
