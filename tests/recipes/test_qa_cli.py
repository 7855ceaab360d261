"""`prefine finetune --task qa`, `evaluate` and `predict` end to end through the real command line.

The data is a synthetic, learnable SQuAD-format set: "What color is the X?" answered by a
context that says "The X is red." among filler sentences, Korean questions of the same kind,
and long contexts whose answer lies beyond the first window. The starting run is a tiny BERT
written with the checkpoint API, as a `prefine pretrain` run folder would hold it.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

from prefine.checkpoint import read_run
from prefine.cli import main
from prefine.tasks.qa_data import load_squad_json, prepare_features
from prefine.tokenizer import load_tokenizer
from tests.conftest import write_tiny_bert_run

OBJECTS = ["apple", "sky", "car", "house", "ball", "door", "bird", "hat", "boat", "cup", "shirt", "lamp"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]
FILLERS = [
    "It was a quiet day in the village.",
    "Many people walked along the old road.",
    "The weather stayed calm and warm.",
    "Children played near the river bank.",
    "A train left the station at noon.",
    "Nobody remembered the name of the town.",
]
KOREAN_OBJECTS = ["사과", "하늘", "자동차", "집", "공", "문", "모자", "컵"]
KOREAN_COLORS = ["빨간색", "파란색", "초록색", "노란색", "흰색", "검은색"]
KOREAN_FILLERS = ["오늘은 조용한 날이었다.", "많은 사람들이 길을 걸었다.", "아이들이 강가에서 놀았다.", "기차가 정오에 떠났다."]
sys.path.insert(0, str(Path(__file__).parents[1] / "metrics"))
from official_squad_scripts import korquad_v1_scores, squad_v1_scores  # noqa: E402

LONG_FILLER_SENTENCES = 12  # 60-100 context tokens: more than one 64-token window


def _question(rng: random.Random, number: int, long_context: bool) -> tuple[str, dict]:
    korean = number % 4 == 3
    objects, colors, fillers = (KOREAN_OBJECTS, KOREAN_COLORS, KOREAN_FILLERS) if korean else (OBJECTS, COLORS, FILLERS)
    subject, color = rng.choice(objects), rng.choice(colors)
    fact = f"{subject}의 색깔은 {color} 입니다." if korean else f"The {subject} is {color}."
    question = f"{subject}의 색깔은 무엇입니까?" if korean else f"What color is the {subject}?"
    before = rng.choices(fillers, k=LONG_FILLER_SENTENCES if long_context else rng.randint(0, 2))
    after = rng.choices(fillers, k=rng.randint(0, 1))
    prefix = " ".join(before + [""])
    context = prefix + fact + "".join(" " + sentence for sentence in after)
    answer_start = len(prefix) + fact.index(color, len(subject))
    return context, {"id": f"q{number}", "question": question, "answers": [{"text": color, "answer_start": answer_start}]}


def synthetic_squad(count: int, seed: int, long_every: int = 6) -> dict:
    """SQuAD v1.1-format questions, one paragraph each; every `long_every`-th context needs two windows."""
    rng = random.Random(seed)
    paragraphs = []
    for number in range(count):
        context, qa = _question(rng, number, long_context=number % long_every == long_every - 1)
        paragraphs.append({"context": context, "qas": [qa]})
    return {"version": "1.1", "data": [{"title": "colors", "paragraphs": paragraphs}]}


def write_json(path: Path, payload: dict) -> str:
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("qa-data")
    return {
        "train": write_json(folder / "train.json", synthetic_squad(64, seed=1)),
        "dev": write_json(folder / "dev.json", synthetic_squad(24, seed=2)),
    }


@pytest.fixture(scope="module")
def init_run(tmp_path_factory, qa_files) -> Path:
    """A tiny BERT run folder as `prefine pretrain` leaves it: tokenizer/, checkpoints/, run.json."""
    run_dir = tmp_path_factory.mktemp("init") / "tiny-bert"
    texts = []
    for path in qa_files.values():
        for paragraph in json.loads(Path(path).read_text(encoding="utf-8"))["data"][0]["paragraphs"]:
            texts += [paragraph["context"]] + [qa["question"] for qa in paragraph["qas"]]
    return write_tiny_bert_run(run_dir, texts)


QA_FLAGS = ["--max-length", "64", "--doc-stride", "32", "--max-query-length", "16"]
TRAINING_FLAGS = ["--batch-size", "16", "--learning-rate", "3e-3", "--num-threads", "1", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, init_run, qa_files) -> Path:
    out = tmp_path_factory.mktemp("qa-run") / "colors"
    code = main(
        [
            "finetune",
            "--task",
            "qa",
            "--init",
            str(init_run),
            "--train",
            qa_files["train"],
            "--eval",
            qa_files["dev"],
            "--out",
            str(out),
            "--epochs",
            "20",
            *QA_FLAGS,
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    return out


def test_the_synthetic_set_has_korean_questions_and_contexts_longer_than_one_window(qa_files, init_run):
    examples, flavor, report = load_squad_json(qa_files["train"])
    assert flavor == "squad" and report.mismatched == 0
    assert any("색깔" in example.question for example in examples)
    features = prepare_features(examples, load_tokenizer(init_run / "tokenizer"), max_length=64, doc_stride=32, max_query_length=16)
    windows_per_question = [int((features.example_index == index).sum()) for index in range(len(examples))]
    assert max(windows_per_question) >= 2 and not features.skipped_example_ids


def test_finetune_writes_official_predictions_and_learns_the_task(qa_run, qa_files, capsys):
    saved = read_run(qa_run)
    assert saved["kind"] == "finetune" and saved["task"] == "qa" and saved["flavor"] == "squad"
    predictions = json.loads((qa_run / "predictions.json").read_text(encoding="utf-8"))
    dev_ids = {example.id for example in load_squad_json(qa_files["dev"])[0]}
    assert set(predictions) == dev_ids and all(isinstance(answer, str) for answer in predictions.values())
    n_best = json.loads((qa_run / "nbest_predictions.json").read_text(encoding="utf-8"))
    assert set(n_best) == dev_ids
    for question_id, entries in n_best.items():
        assert entries[0]["text"] == predictions[question_id]
        assert math.isclose(sum(entry["probability"] for entry in entries), 1.0, rel_tol=1e-6)
    scores = json.loads((qa_run / "eval_metrics.json").read_text(encoding="utf-8"))
    assert all(math.isfinite(scores[key]) for key in ("exact_match", "f1", "loss"))
    assert scores["total"] == len(dev_ids)
    # Random spans of a 20-token context almost never equal the one-word color; a trained model does.
    assert scores["exact_match"] >= 75.0 and scores["f1"] >= scores["exact_match"]
    config = json.loads((qa_run / "checkpoints" / (qa_run / "checkpoints" / "best").read_text().strip() / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"] and config["qa_data"]["doc_stride"] == 32


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_finetune_with_test_and_no_eval_selects_on_whole_articles_of_train_and_reports_the_test_file(init_run, qa_files, tmp_path):
    # The training file as 16 articles of 4 questions: the carved split holds out whole articles.
    dataset = json.loads(Path(qa_files["train"]).read_text(encoding="utf-8"))
    paragraphs = dataset["data"][0]["paragraphs"]
    dataset["data"] = [
        {"title": f"colors {start // 4}", "paragraphs": paragraphs[start : start + 4]} for start in range(0, len(paragraphs), 4)
    ]
    train = write_json(tmp_path / "articles.json", dataset)
    out = tmp_path / "carved"
    flags = ["--task", "qa", "--init", str(init_run), "--train", train, "--test", qa_files["dev"], "--out", str(out)]
    assert main(["finetune", *flags, "--max-steps", "4", "--eval-every", "2", *QA_FLAGS, *TRAINING_FLAGS]) == 0
    scoring = read_run(out)["scoring"]
    carved = scoring["dev_split"]
    assert scoring["selected_on"] == carved["dev"] == str(out / "dev-split" / "dev.jsonl")
    assert scoring["reported_on"] == qa_files["dev"] and scoring["report_chose_nothing"] is True
    assert (carved["num_train"], carved["num_dev"]) == (56, 8) and carved["fraction"] == 0.1  # questions: 2 of 16 articles
    dev_titles = {article["title"] for article in load_squad_json_raw(carved["dev"])["data"]}
    train_titles = {article["title"] for article in load_squad_json_raw(carved["train"])["data"]}
    assert len(dev_titles) == 2 and not dev_titles & train_titles
    # The checkpoint was chosen on the 8 carved questions; the test file's 24 were scored once, after.
    assert json.loads((out / "eval_metrics.json").read_text(encoding="utf-8"))["total"] == 8
    assert json.loads((out / "test_eval_metrics.json").read_text(encoding="utf-8"))["total"] == 24


def load_squad_json_raw(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_evaluate_rescores_the_run_exactly_as_fine_tuning_did(qa_run, qa_files, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(qa_run), "--data", qa_files["dev"]]) == 0
    output = capsys.readouterr().out
    scores = last_json_line(output)
    saved = json.loads((qa_run / "eval_metrics.json").read_text(encoding="utf-8"))
    assert scores["exact_match"] == pytest.approx(saved["exact_match"]) and scores["f1"] == pytest.approx(saved["f1"])
    assert output.startswith("squad on 24 questions: exact match")
    # predictions.json, scored by the official SQuAD v1.1 rules, gives the numbers the run reported.
    dev = json.loads(Path(qa_files["dev"]).read_text(encoding="utf-8"))
    official = squad_v1_scores(dev, json.loads((qa_run / "predictions.json").read_text(encoding="utf-8")))
    assert official["f1"] == pytest.approx(scores["f1"], abs=1e-9) and official["exact_match"] == pytest.approx(
        scores["exact_match"], abs=1e-9
    )


def test_evaluate_reads_korquad_and_squad_v2_files_with_their_own_scripts(qa_run, tmp_path, capsys):
    korean = synthetic_squad(40, seed=3)
    korean["data"][0]["paragraphs"] = [p for p in korean["data"][0]["paragraphs"] if "색깔" in p["qas"][0]["question"]]
    korean["version"] = "KorQuAD_v1.0_dev"
    capsys.readouterr()
    korquad_file = write_json(tmp_path / "korquad.json", korean)
    assert main(["evaluate", str(qa_run), "--data", korquad_file]) == 0
    output = capsys.readouterr().out
    assert output.startswith(f"korquad on {len(korean['data'][0]['paragraphs'])} questions")
    # The same model's answers, scored by the official KorQuAD v1.0 rules, give exactly evaluate's numbers.
    assert main(["predict", str(qa_run), "--data", korquad_file, "--output", str(tmp_path / "answers.json")]) == 0
    official = korquad_v1_scores(korean, json.loads((tmp_path / "answers.json").read_text(encoding="utf-8")))
    reported = last_json_line(output)
    assert reported["f1"] == pytest.approx(official["f1"], abs=1e-9) and reported["exact_match"] == pytest.approx(
        official["exact_match"], abs=1e-9
    )
    assert 0.0 < official["f1"] < 100.0  # partly right answers: a character-level F1 that differs from exact match matters

    v2 = synthetic_squad(12, seed=4)
    unanswerable = {"id": "none", "question": "What color is the moon?", "answers": [], "is_impossible": True}
    v2["data"][0]["paragraphs"][0]["qas"].append(unanswerable)
    assert main(["evaluate", str(qa_run), "--data", write_json(tmp_path / "v2.json", v2)]) == 0
    scores = last_json_line(capsys.readouterr().out)
    assert scores["HasAns_total"] == 12 and scores["NoAns_total"] == 1
    assert all(math.isfinite(scores[key]) for key in ("HasAns_f1", "NoAns_f1", "exact_match"))


def test_predict_answers_one_question_with_probabilities(qa_run, qa_files, capsys):
    predictions = json.loads((qa_run / "predictions.json").read_text(encoding="utf-8"))
    paragraph = json.loads(Path(qa_files["dev"]).read_text(encoding="utf-8"))["data"][0]["paragraphs"][0]
    qa = paragraph["qas"][0]
    capsys.readouterr()
    assert main(["predict", str(qa_run), "--question", qa["question"], "--context", paragraph["context"], "--nbest", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == predictions[qa["id"]]
    assert len(lines) == 4
    probabilities = [float(line.split("\t")[0]) for line in lines[1:]]
    assert probabilities == sorted(probabilities, reverse=True) and all(0.0 < value <= 1.0 for value in probabilities)
    assert lines[1].split("\t")[1] == lines[0]


def test_predict_over_a_file_matches_the_runs_predictions(qa_run, qa_files, tmp_path, capsys):
    questions = json.loads(Path(qa_files["dev"]).read_text(encoding="utf-8"))
    for paragraph in questions["data"][0]["paragraphs"]:
        for qa in paragraph["qas"]:
            del qa["answers"]  # questions to answer need no gold answers
    source = write_json(tmp_path / "questions.json", questions)
    assert main(["predict", str(qa_run), "--data", source, "--output", str(tmp_path / "answers.json")]) == 0
    answers = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert answers == json.loads((qa_run / "predictions.json").read_text(encoding="utf-8"))

    capsys.readouterr()
    assert main(["predict", str(qa_run), "--data", source, "--nbest", "2"]) == 0
    n_best = json.loads(capsys.readouterr().out)
    assert set(n_best) == set(answers) and all(1 <= len(entries) <= 2 for entries in n_best.values())
    assert all(entries[0]["text"] == answers[question_id] for question_id, entries in n_best.items())


def test_misused_flags_fail_with_one_line(qa_run, init_run, qa_files, tmp_path, capsys):
    capsys.readouterr()
    assert main(["predict", str(qa_run)]) == 2
    assert "--question" in capsys.readouterr().err
    assert main(["predict", str(qa_run), "--question", "What color is the sky?"]) == 2
    assert "--context" in capsys.readouterr().err
    code = main(
        [
            "finetune",
            "--task",
            "qa",
            "--init",
            str(init_run),
            "--train",
            qa_files["train"],
            "--out",
            str(tmp_path / "x"),
            "--max-seq-length",
            "64",
        ]
    )
    assert code == 2 and "--max-seq-length" in capsys.readouterr().err
    code = main(["finetune", "--init", str(init_run), "--train", qa_files["train"], "--out", str(tmp_path / "y"), "--doc-stride", "16"])
    assert code == 2 and "--doc-stride" in capsys.readouterr().err
    code = main(
        [
            "finetune",
            "--task",
            "qa",
            "--init",
            str(init_run),
            "--train",
            qa_files["train"],
            "--out",
            str(tmp_path / "z"),
            "--max-length",
            "128",
        ]
    )
    assert code == 2 and "exceeds the model's 64 positions" in capsys.readouterr().err
