"""`prefine finetune --task ner`, `evaluate`, `predict` and `export` end to end through the real command line.

English word-level data in CoNLL columns (every eighth sentence longer than one window) and
Korean character-level data in KLUE's layout, both synthetic and learnable; the starting run
is a tiny BERT written with the checkpoint API, as a `prefine pretrain` run folder holds it.
The exported model is checked against transformers' own token-classification pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ner_helpers import english_sentences, korean_sentences, tiny_init_run, write_conll, write_jsonl, write_klue

from prefine.cli import main

TRAINING_FLAGS = ["--batch-size", "16", "--learning-rate", "3e-3", "--num-threads", "1", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ner-data")
    english_train, english_dev = english_sentences(120, seed=1, long_every=8), english_sentences(30, seed=2, long_every=8)
    korean_train, korean_dev = korean_sentences(80, seed=1), korean_sentences(20, seed=2)
    return {
        "train": write_conll(folder / "train.conll", english_train),
        "dev": write_conll(folder / "dev.conll", english_dev, separator="\t", extra_column=True),
        "dev_jsonl": write_jsonl(folder / "dev.jsonl", english_dev),
        "ko_train": write_klue(folder / "klue_ner_train.tsv", korean_train),
        "ko_dev": write_klue(folder / "klue_ner_dev.tsv", korean_dev),
        "texts": [" ".join(words) for words, _ in english_train + english_dev] + ["".join(chars) for chars, _ in korean_train + korean_dev],
    }


@pytest.fixture(scope="module")
def init_run(tmp_path_factory, files) -> Path:
    return tiny_init_run(tmp_path_factory.mktemp("init") / "tiny-bert", files["texts"])


@pytest.fixture(scope="module")
def english_run(tmp_path_factory, init_run, files) -> Path:
    out = tmp_path_factory.mktemp("ner-run") / "english"
    code = main(
        [
            "finetune",
            "--task",
            "ner",
            "--init",
            str(init_run),
            "--train",
            files["train"],
            "--eval",
            files["dev"],
            "--out",
            str(out),
            "--epochs",
            "8",
            "--max-seq-length",
            "24",
            "--stride",
            "8",
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def korean_run(tmp_path_factory, init_run, files) -> Path:
    out = tmp_path_factory.mktemp("ner-run") / "korean"
    code = main(
        [
            "finetune",
            "--task",
            "ner",
            "--init",
            str(init_run),
            "--train",
            files["ko_train"],
            "--eval",
            files["ko_dev"],
            "--out",
            str(out),
            "--epochs",
            "10",
            "--max-seq-length",
            "64",
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    return out


def test_finetuning_learns_the_entities_and_windows_leave_no_word_unpredicted(english_run, files):
    saved = json.loads((english_run / "run.json").read_text())
    assert saved["task"] == "ner" and saved["layout"] == "words" and saved["tag_scheme"] == "IOB2"
    report = json.loads((english_run / "eval_metrics.json").read_text())
    assert report["metrics"]["entity_f1"] > 0.9
    assert report["lenient"]["overall"]["gold"] == 78
    predictions = json.loads((english_run / "eval_predictions.json").read_text())
    long_ones = [entry for entry in predictions if len(entry["tags"]) > 30]
    assert long_ones, "the dev set needs sentences longer than one 24-piece window"
    for entry in predictions:
        assert len(entry["tags"]) == len(entry["text"].split(" "))
    # The far end of a long sentence is predicted too (run_ner.py would truncate it away).
    assert all(any(entity["start"] > len(entry["text"]) // 2 for entity in entry["entities"]) for entry in long_ones)


def test_evaluate_scores_other_formats_of_the_same_data_identically(english_run, files, capsys):
    assert main(["evaluate", str(english_run), "--data", files["dev"]]) == 0
    columns = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["evaluate", str(english_run), "--data", files["dev_jsonl"]]) == 0
    printed = capsys.readouterr().out
    assert "overall" in printed and "strict IOB2" in printed and "PER" in printed
    assert json.loads(printed.strip().splitlines()[-1]) == columns
    assert columns["sentences"] == 30 and "character_macro_f1" not in columns
    assert columns["entity_macro_f1"] == columns["entity_macro_f1_strict"]  # words: KLUE's reading is the strict one


def test_predict_text_gives_entity_spans_with_offsets(english_run, capsys):
    text = "Mary Smith visited New York yesterday ."
    assert main(["predict", str(english_run), "--text", text]) == 0
    result = json.loads(capsys.readouterr().out)
    spans = [(entity["type"], entity["text"]) for entity in result["entities"]]
    assert spans == [("PER", "Mary Smith"), ("LOC", "New York")]
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"] and 0 < entity["score"] <= 1


def test_predict_a_file_writes_jsonl_or_conll_columns(english_run, files, tmp_path):
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(english_run), "--data", files["dev_jsonl"], "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 30 and all(len(record["tags"]) == len(record["tokens"]) for record in records)
    columns = tmp_path / "predictions.tsv"
    assert main(["predict", str(english_run), "--data", files["dev_jsonl"], "--format", "tsv", "--output", str(columns)]) == 0
    blocks = columns.read_text().strip().split("\n\n")
    assert len(blocks) == 30 and blocks[0].splitlines()[0].split("\t")[0] == records[0]["tokens"][0]


def test_korean_character_data_gets_klue_scores_and_character_offsets(korean_run, files, capsys):
    assert main(["evaluate", str(korean_run), "--data", files["ko_dev"]]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed.strip().splitlines()[-1])
    assert "character-level macro F1" in printed and metrics["character_macro_f1"] > 0.9 and metrics["entity_f1"] > 0.9
    assert metrics["entity_macro_f1"] > 0.9
    text = "홍길동은 부산에 갔다."
    assert main(["predict", str(korean_run), "--text", text]) == 0
    entities = json.loads(capsys.readouterr().out)["entities"]
    assert [(entity["type"], entity["text"], entity["start"], entity["end"]) for entity in entities] == [
        ("PS", "홍길동", 0, 3),
        ("LC", "부산", 5, 7),
    ]


def test_export_loads_in_transformers_and_its_pipeline_finds_the_same_entities(english_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    from prefine.inference import load_run

    exported = tmp_path / "exported"
    assert main(["export", str(english_run), "--format", "hf", "--out", str(exported)]) == 0
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(exported)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(exported))
    assert model.config.id2label == {0: "O", 1: "B-LOC", 2: "I-LOC", 3: "B-PER", 4: "I-PER"}
    predictor = load_run(english_run)
    inputs = tokenizer("Mary Smith visited New York .", return_tensors="pt")
    with torch.no_grad():
        ours = predictor.model(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"]).logits
        theirs = model(**inputs).logits
    assert torch.allclose(ours, theirs, atol=1e-5)

    pipeline = transformers.pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first")
    texts = ["Mary Smith visited New York yesterday .", "Peter loves Tokyo again .", "Alice left San Francisco with friends ."]
    for text, result in zip(texts, predictor.predict_records([{"text": text} for text in texts])):
        reference = [(group["entity_group"], group["start"], group["end"], float(group["score"])) for group in pipeline(text)]
        mine = [(entity["type"], entity["start"], entity["end"], entity["score"]) for entity in result["entities"]]
        assert [row[:3] for row in mine] == [row[:3] for row in reference]
        assert all(abs(a[3] - b[3]) < 1e-4 for a, b in zip(mine, reference))


def test_a_tag_training_never_saw_stops_before_any_work(init_run, files, tmp_path, capsys):
    dev = tmp_path / "dev.conll"
    dev.write_text("Mary B-PER\nsings O\n\nParis B-GPE\n", encoding="utf-8")
    out = tmp_path / "never"
    code = main(
        [
            "finetune",
            "--task",
            "ner",
            "--init",
            str(init_run),
            "--train",
            files["train"],
            "--eval",
            str(dev),
            "--out",
            str(out),
            "--max-seq-length",
            "64",
            *TRAINING_FLAGS,
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "dev.conll line 4 has the tag 'B-GPE', which the training data never uses" in error
    assert "Traceback" not in error and "IOB2 (detected" not in error and not out.exists()


def test_a_flag_of_another_task_is_rejected(init_run, files, tmp_path, capsys):
    code = main(
        [
            "finetune",
            "--task",
            "ner",
            "--init",
            str(init_run),
            "--train",
            files["train"],
            "--out",
            str(tmp_path / "x"),
            "--doc-stride",
            "64",
        ]
    )
    assert code == 2 and "--doc-stride" in capsys.readouterr().err


def _train_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {record["step"]: record["train/loss"] for record in records if "train/loss" in record}


def test_ctrl_c_then_resume_gives_the_losses_of_an_uninterrupted_run(init_run, files, tmp_path, monkeypatch):
    import os
    import signal

    from prefine.tasks.token_classification import WindowBatches

    command = [
        "finetune",
        "--task",
        "ner",
        "--init",
        str(init_run),
        "--train",
        files["train"],
        "--max-seq-length",
        "24",
        "--max-steps",
        "8",
        "--log-every",
        "1",
        *TRAINING_FLAGS,
    ]
    assert main([*command, "--out", str(tmp_path / "straight")]) == 0
    original, calls = WindowBatches.batch_at, []

    def interrupting(self, position, rank, world_size):
        calls.append(position)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, position, rank, world_size)

    monkeypatch.setattr(WindowBatches, "batch_at", interrupting)
    assert main([*command, "--out", str(tmp_path / "resumed")]) == 130
    monkeypatch.setattr(WindowBatches, "batch_at", original)
    assert main(["finetune", "--resume", str(tmp_path / "resumed")]) == 0
    assert _train_losses(tmp_path / "resumed") == _train_losses(tmp_path / "straight")
