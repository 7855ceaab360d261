"""Relation extraction: KLUE-RE reading and checks, entity markers and windows, and finetune/evaluate/predict/export end to end.

The data is a tiny synthetic KLUE-RE set in Korean (four relations, no_relation among them),
written in the official layout (a JSON array) and as JSON lines. The run starts from a tiny random
BERT written with the checkpoint API, as a `prefine pretrain` run folder holds it.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.tasks.relation_extraction import (
    EntityMarkers,
    RelationEncoder,
    RelationExample,
    kept_positions,
    marked_sentence,
    parse_entity,
    read_relation_source,
)
from prefine.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer
from tests.conftest import write_tiny_bert_run

PEOPLE = ["이순신", "김철수", "박영희", "홍길동"]
ORGS = ["삼성전자", "서울대학교", "현대자동차", "카카오"]
YEARS = ["1990년", "2001년", "1545년", "1973년"]
CITIES = ["서울", "부산", "대전", "광주"]
# (sentence template, subject slot, object slot, label); the object comes first in some sentences.
TEMPLATES = [
    ("{p}은 {o}에서 일한다.", "p", "o", "per:employee_of"),
    ("{p}은 {y}에 태어났다.", "p", "y", "per:date_of_birth"),
    ("{y}에 태어난 {p}은 유명하다.", "p", "y", "per:date_of_birth"),
    ("{o}의 본사는 {c}에 있다.", "o", "c", "org:place_of_headquarters"),
    ("{p}은 어제 {c}에 다녀왔다.", "p", "c", "no_relation"),
]
TYPES = {"p": "PER", "o": "ORG", "y": "DAT", "c": "LOC"}


def entity(sentence: str, word: str, entity_type: str) -> dict:
    start = sentence.index(word)
    return {"word": word, "start_idx": start, "end_idx": start + len(word) - 1, "type": entity_type}


def klue_records(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for number in range(count):
        template, subject, object_, label = rng.choice(TEMPLATES)
        words = {"p": rng.choice(PEOPLE), "o": rng.choice(ORGS), "y": rng.choice(YEARS), "c": rng.choice(CITIES)}
        sentence = template.format(**words)
        records.append(
            {
                "guid": f"klue-re-v1_train_{number:05d}",
                "sentence": sentence,
                "subject_entity": entity(sentence, words[subject], TYPES[subject]),
                "object_entity": entity(sentence, words[object_], TYPES[object_]),
                "label": label,
                "source": "wikipedia",
            }
        )
    return records


def write_json_array(path: Path, records: list[dict]) -> str:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    return str(path)


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return str(path)


def example(sentence: str, subject: tuple[int, int], object_: tuple[int, int], types: tuple[str, str] = ("PER", "ORG")) -> RelationExample:
    """An example from inclusive character ranges."""
    from prefine.tasks.relation_extraction import Entity

    return RelationExample(
        sentence,
        Entity(sentence[subject[0] : subject[1] + 1], subject[0], subject[1], types[0]),
        Entity(sentence[object_[0] : object_[1] + 1], object_[0], object_[1], types[1]),
    )


@pytest.fixture(scope="module")
def tokenizer():
    sentences = [record["sentence"] for record in klue_records(200, seed=0)] + [
        "조지 해리슨이 쓰고 비틀즈가 1969년 앨범에 담은 노래다."
    ] * 5
    tokenizer = train_tokenizer(sentences, TokenizerConfig(vocab_size=250, min_frequency=1), show_progress=False)
    tokenizer.add_special_tokens(EntityMarkers().tokens())
    return tokenizer


# ---------------------------------------------------------------------------------------------
# Reading


def test_klue_json_array_and_jsonl_read_alike_and_unknown_fields_are_ignored(tmp_path):
    records = klue_records(12, seed=1)
    for record in records:
        record["annotator"] = {"id": 3}  # a field the task does not know
    from_array = read_relation_source(write_json_array(tmp_path / "klue-re-v1.1_train.json", records), None)
    from_lines = read_relation_source(write_jsonl(tmp_path / "mine.jsonl", records), None)
    assert from_array.examples == from_lines.examples
    first = from_array.examples[0]
    assert first.sentence == records[0]["sentence"] and first.label == records[0]["label"] and first.guid == records[0]["guid"]
    assert (first.subject.word, first.subject.start, first.subject.end, first.subject.type) == (
        records[0]["subject_entity"]["word"],
        records[0]["subject_entity"]["start_idx"],
        records[0]["subject_entity"]["end_idx"],
        "PER" if records[0]["subject_entity"]["type"] == "PER" else records[0]["subject_entity"]["type"],
    )


def test_a_span_that_does_not_spell_its_word_is_one_error_naming_file_and_record(tmp_path):
    records = klue_records(5, seed=2)
    records[3]["object_entity"]["end_idx"] += 1  # exclusive where KLUE's is inclusive: the usual mistake
    path = write_json_array(tmp_path / "train.json", records)
    with pytest.raises(PrefineError) as error:
        read_relation_source(path, None)
    message = str(error.value)
    assert "train.json record 4" in message and "object_entity" in message and "inclusive" in message and "\n" not in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["subject_entity"].update(start_idx=-1), "outside the sentence"),
        (lambda r: r["subject_entity"].update(end_idx=999), "outside the sentence"),
        (lambda r: r["subject_entity"].pop("word"), "lacks word"),
        (lambda r: r.update(object_entity="이순신"), "must be an object"),
        (lambda r: r["subject_entity"].update(start_idx="x"), "whole number"),
        (lambda r: r.pop("label"), 'no "label"'),
    ],
)
def test_broken_records_stop_with_the_record_named(tmp_path, change, expected):
    records = klue_records(4, seed=3)
    change(records[1])
    with pytest.raises(PrefineError, match=expected) as error:
        read_relation_source(write_jsonl(tmp_path / "data.jsonl", records), None)
    assert "data.jsonl line 2" in str(error.value)


def test_a_file_without_the_klue_fields_names_them(tmp_path):
    path = write_jsonl(tmp_path / "other.jsonl", [{"text": "이순신", "label": "a"}])
    with pytest.raises(PrefineError, match="no sentence, subject_entity, object_entity field"):
        read_relation_source(path, None)


def test_entities_given_as_json_text_read_like_objects():
    sentence = "이순신은 서울에 갔다."
    assert parse_entity('{"word": "서울", "start_idx": 5, "end_idx": 6, "type": "LOC"}', "object_entity", sentence, "x") == parse_entity(
        {"word": "서울", "start_idx": "5", "end_idx": 6, "type": "LOC"}, "object_entity", sentence, "x"
    )


# ---------------------------------------------------------------------------------------------
# Markers


@pytest.mark.parametrize(
    ("subject", "object_", "expected"),
    [
        ((0, 2), (5, 6), "<subj>이순신</subj>은 <obj>서울</obj>에 갔다."),  # subject first
        ((5, 6), (0, 2), "<obj>이순신</obj>은 <subj>서울</subj>에 갔다."),  # object first
        ((0, 2), (3, 3), "<subj>이순신</subj><obj>은</obj> 서울에 갔다."),  # adjacent, subject first
        ((3, 3), (0, 2), "<obj>이순신</obj><subj>은</subj> 서울에 갔다."),  # adjacent, object first
        ((0, 6), (5, 6), "<subj>이순신은 <obj>서울</obj></subj>에 갔다."),  # the object nested in the subject
        ((5, 6), (0, 6), "<obj>이순신은 <subj>서울</subj></obj>에 갔다."),  # the subject nested in the object
        ((1, 5), (5, 7), None),  # overlapping: checked below
        ((0, 2), (0, 2), "<subj><obj>이순신</obj></subj>은 서울에 갔다."),  # the same span: subject outside
    ],
)
def test_markers_land_around_the_right_characters_in_either_order(subject, object_, expected):
    sentence = "이순신은 서울에 갔다."
    marked = marked_sentence(example(sentence, subject, object_), EntityMarkers())
    for marker in ("<subj>", "</subj>", "<obj>", "</obj>"):
        assert marked.count(marker) == 1
    # Taking the markers out gives the sentence back: no character is lost or copied.
    plain = marked
    for marker in ("<subj>", "</subj>", "<obj>", "</obj>"):
        plain = plain.replace(marker, "")
    assert plain == sentence
    if expected is not None:
        assert marked == expected
    else:
        assert marked == "이<subj>순신은 <obj>서</subj>울에</obj> 갔다."


def test_encoded_markers_surround_the_entity_pieces_and_a_split_word_continues(tokenizer):
    sentence = "조지 해리슨이 쓰고 비틀즈가 1969년 앨범에 담은 노래다."
    start = sentence.index("비틀즈")
    encoder = RelationEncoder(tokenizer, EntityMarkers(), 64)
    encoded, truncated = encoder.encode([example(sentence, (start, start + 2), (0, 5))])
    tokens = [tokenizer.id_to_token(int(i)) for i in encoded.example_ids(0)]
    assert truncated == 0 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"

    def between(opening: str, closing: str) -> str:
        inside = tokens[tokens.index(opening) + 1 : tokens.index(closing)]
        return "".join(token.removeprefix("##") for token in inside)

    assert between("<subj>", "</subj>") == "비틀즈"
    assert between("<obj>", "</obj>") == "조지해리슨"
    # "비틀즈가" is one word: after the marker, "가" goes on as the word's continuation piece, as without the marker.
    # (read alone after the marker, it would be the word-start piece "가").
    assert tokens[tokens.index("</subj>") + 1] == "##가"
    assert tokens[tokens.index("</obj>") + 1] == "##이"
    # A marker after a space starts a word as usual.
    assert tokens[tokens.index("<subj>") - 1] == "쓰고"


def test_typed_markers_carry_the_type_and_a_type_training_never_saw_is_refused(tmp_path, tokenizer):
    records = klue_records(30, seed=4)
    source = read_relation_source(write_jsonl(tmp_path / "train.jsonl", records), None)
    markers = EntityMarkers.for_training("typed", source)
    assert markers.types == ("DAT", "LOC", "ORG", "PER")
    assert "<subj:PER>" in markers.tokens() and "</obj:LOC>" in markers.tokens() and len(markers.tokens()) == 16
    assert marked_sentence(example("이순신은 서울에 갔다.", (0, 2), (5, 6), ("PER", "LOC")), markers) == (
        "<subj:PER>이순신</subj:PER>은 <obj:LOC>서울</obj:LOC>에 갔다."
    )
    records[0]["object_entity"]["type"] = "POH"
    unseen = read_relation_source(write_jsonl(tmp_path / "dev.jsonl", records), None)
    with pytest.raises(PrefineError, match="type 'POH', which training never saw"):
        markers.check_types(unseen)
    with pytest.raises(PrefineError, match="lacks the entity markers <subj:DAT>"):
        RelationEncoder(tokenizer, markers, 64)


# ---------------------------------------------------------------------------------------------
# Windows


def test_a_window_keeps_both_entities_with_the_spare_room_shared_around_them():
    # 40 pieces; the entity blocks are 10..13 and 18..21; 16 fit.
    kept = kept_positions(40, [(10, 14), (18, 22)], [10, 13, 18, 21], 16)
    assert kept.tolist() == list(range(8, 24))
    # Near the start, the room the start lacks goes after.
    assert kept_positions(40, [(1, 3), (4, 6)], [1, 2, 4, 5], 10).tolist() == list(range(0, 10))
    # Too far apart for one window: markers, entity pieces, then the nearest context, in order.
    kept = kept_positions(100, [(2, 6), (90, 93)], [2, 5, 90, 92], 14)
    assert len(kept) == 14 and set(range(2, 6)) <= set(kept.tolist()) and set(range(90, 93)) <= set(kept.tolist())
    assert kept.tolist() == sorted(kept.tolist())


def test_long_sentences_are_cut_so_both_entities_and_their_markers_stay(tokenizer):
    filler = " ".join(["서울에 갔다."] * 30)
    sentence = f"{filler} 이순신은 삼성전자에서 일한다. {filler}"
    start = sentence.index("이순신")
    far = f"이순신은 {filler} 삼성전자에서 일한다."
    for text, subject, object_ in (
        (sentence, (start, start + 2), (sentence.index("삼성전자"), sentence.index("삼성전자") + 3)),
        (far, (0, 2), (far.index("삼성전자"), far.index("삼성전자") + 3)),
    ):
        encoded, truncated = RelationEncoder(tokenizer, EntityMarkers(), 24).encode([example(text, subject, object_)])
        tokens = [tokenizer.id_to_token(int(i)) for i in encoded.example_ids(0)]
        assert truncated == 1 and len(tokens) == 24
        for marker in ("<subj>", "</subj>", "<obj>", "</obj>"):
            assert marker in tokens
        assert "".join(t.removeprefix("##") for t in tokens[tokens.index("<subj>") + 1 : tokens.index("</subj>")]) == "이순신"


# ---------------------------------------------------------------------------------------------
# End to end through the command line


TRAINING_FLAGS = ["--batch-size", "16", "--learning-rate", "3e-3", "--num-threads", "1", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("klue-re")
    train, dev = klue_records(160, seed=10), klue_records(40, seed=11)
    return {
        "train": write_json_array(folder / "klue-re-v1.1_train.json", train),
        "dev": write_json_array(folder / "klue-re-v1.1_dev.json", dev),
        "dev_jsonl": write_jsonl(folder / "dev.jsonl", dev),
        "texts": [record["sentence"] for record in train + dev],
    }


@pytest.fixture(scope="module")
def init_run(tmp_path_factory, files) -> Path:
    return write_tiny_bert_run(tmp_path_factory.mktemp("init") / "tiny-bert", files["texts"], vocab_size=200)


@pytest.fixture(scope="module")
def run(tmp_path_factory, init_run, files) -> Path:
    out = tmp_path_factory.mktemp("re-run") / "klue-re"
    code = main(
        [
            "finetune",
            "--task",
            "relation-extraction",
            "--init",
            str(init_run),
            "--train",
            files["train"],
            "--eval",
            files["dev"],
            "--out",
            str(out),
            "--max-steps",
            "60",
            "--max-seq-length",
            "48",
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    return out


def test_finetuning_saves_the_markers_in_the_run_tokenizer_and_grows_the_table(run, init_run):
    tokenizer = load_tokenizer(run / "tokenizer")
    before = load_tokenizer(init_run / "tokenizer").get_vocab_size()
    assert [tokenizer.token_to_id(marker) for marker in ("<subj>", "</subj>", "<obj>", "</obj>")] == list(range(before, before + 4))
    from prefine.inference import load_run

    predictor = load_run(run)
    assert predictor.model.bert.embeddings.word_embeddings.num_embeddings == before + 4
    saved = json.loads((run / "run.json").read_text())
    assert saved["task"] == "relation-extraction" and saved["training"]["best_metric"] == "micro_f1:max"


def test_new_marker_rows_start_at_the_mean_of_the_pretrained_embeddings(init_run):
    from prefine.interop.initial_weights import resolve_init
    from prefine.tasks.interface import get_task

    task, init = get_task("relation-extraction"), resolve_init(str(init_run))
    rows = init.config.vocab_size
    model = task.build_model(init.config, {"vocab_size": rows + 4, "id2label": {"0": "a", "1": "b"}})
    task.load_initial_weights(model, init, from_scratch=False, announce=False)
    table = model.bert.embeddings.word_embeddings.weight.detach()
    pretrained = next(value for name, value in init.state_dict.items() if name.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(table[:rows], pretrained)
    assert torch.allclose(table[rows:], pretrained.mean(dim=0).expand(4, -1))


def test_evaluate_scores_the_klue_metrics_the_same_from_json_or_jsonl(run, files, capsys):
    scores = []
    for data in (files["dev"], files["dev_jsonl"]):
        capsys.readouterr()
        assert main(["evaluate", str(run), "--data", data]) == 0
        scores.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert scores[0] == scores[1]
    assert {"micro_f1", "auprc", "accuracy", "loss"} <= set(scores[0]) and scores[0]["examples"] == 40
    final = json.loads((run / "eval_metrics.json").read_text())
    assert final["micro_f1"] == pytest.approx(scores[0]["micro_f1"]) and final["auprc"] == pytest.approx(scores[0]["auprc"])


def test_predict_writes_a_label_and_probabilities_per_record_and_serve_records_agree(run, files, tmp_path, capsys):
    output = tmp_path / "predictions.jsonl"
    assert main(["predict", str(run), "--data", files["dev"], "--output", str(output)]) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    records = json.loads(Path(files["dev"]).read_text(encoding="utf-8"))
    assert len(lines) == len(records)
    labels = {"no_relation", "org:place_of_headquarters", "per:date_of_birth", "per:employee_of"}
    for line, record in zip(lines, records):
        assert line["guid"] == record["guid"] and line["subject"] == record["subject_entity"]["word"]
        assert set(line["probabilities"]) == labels and line["label"] == max(line["probabilities"], key=line["probabilities"].get)
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    from prefine.inference import load_run

    served = load_run(run).predict_records(
        [{key: record[key] for key in ("sentence", "subject_entity", "object_entity")} for record in records]
    )
    assert [answer["label"] for answer in served] == [line["label"] for line in lines]
    for answer, line in zip(served, lines):
        assert answer["probabilities"] == pytest.approx(line["probabilities"], abs=1e-6)


def test_predict_reads_json_lines_on_stdin(run, files, monkeypatch, capsys):
    record = json.loads(Path(files["dev_jsonl"]).read_text(encoding="utf-8").splitlines()[0])
    del record["label"]
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(record, ensure_ascii=False) + "\n"))
    capsys.readouterr()
    assert main(["predict", str(run), "--data", "-"]) == 0
    answer = json.loads(capsys.readouterr().out.strip())
    assert answer["sentence"] == record["sentence"] and "label" in answer


def test_hf_export_is_a_sequence_classifier_with_the_markers_and_the_same_logits(run, tmp_path):
    transformers = pytest.importorskip("transformers")
    from prefine.inference import load_run

    exported = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "--out", str(exported)]) == 0
    model = transformers.BertForSequenceClassification.from_pretrained(str(exported)).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(exported))
    assert model.config.id2label == {0: "no_relation", 1: "org:place_of_headquarters", 2: "per:date_of_birth", 3: "per:employee_of"}

    predictor = load_run(run)
    sentence = "이순신은 삼성전자에서 일한다."
    marked = "<subj>이순신</subj> 은 <obj>삼성전자</obj> 에서 일한다."
    # Where no marker splits a word, transformers' tokenizer reads the marked text to prefine's ids.
    spaced = "이순신 은 삼성전자 에서 일한다."
    ours = predictor.encoder.encode([example(spaced, (0, 2), (6, 9))])[0]
    ids = torch.tensor([ours.example_ids(0)])
    assert hf_tokenizer(marked)["input_ids"] == ids[0].tolist()
    # On any marked input (here one whose markers split words), the exported model gives prefine's logits.
    mine = predictor.encoder.encode([example(sentence, (0, 2), (5, 8))])[0]
    ids = torch.tensor([mine.example_ids(0)])
    with torch.no_grad():
        theirs = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)).logits
        ours_logits = predictor.model(ids, torch.zeros_like(ids), torch.ones_like(ids)).logits
    assert torch.allclose(theirs, ours_logits, atol=1e-5)
    probabilities = torch.softmax(theirs[0], -1).numpy()
    record = {"sentence": sentence, "subject_entity": {"word": "이순신", "start_idx": 0, "end_idx": 2, "type": "PER"}}
    record["object_entity"] = {"word": "삼성전자", "start_idx": 5, "end_idx": 8, "type": "ORG"}
    served = predictor.predict_records([record])[0]["probabilities"]
    assert np.allclose([served[model.config.id2label[i]] for i in range(4)], probabilities, atol=1e-5)


def test_onnx_export_gives_prefine_logits_on_marked_inputs(run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from prefine.inference import load_run

    exported = tmp_path / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(exported)]) == 0
    assert json.loads((exported / "config.json").read_text())["id2label"]["0"] == "no_relation"
    assert load_tokenizer(exported).token_to_id("<subj>") is not None
    predictor = load_run(run)
    encoded = predictor.encoder.encode([example("이순신은 삼성전자에서 일한다.", (0, 2), (5, 8))])[0]
    ids = np.asarray([encoded.example_ids(0)], dtype=np.int64)
    session = onnxruntime.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    (theirs,) = session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    with torch.no_grad():
        ours = predictor.model(
            torch.from_numpy(ids), torch.zeros_like(torch.from_numpy(ids)), torch.ones_like(torch.from_numpy(ids))
        ).logits
    assert np.allclose(theirs, ours.numpy(), atol=1e-4)


def test_a_dev_split_is_carved_when_only_test_is_given(init_run, files, tmp_path):
    out = tmp_path / "split-run"
    code = main(
        [
            "finetune",
            "--task",
            "re",
            "--init",
            str(init_run),
            "--train",
            files["train"],
            "--test",
            files["dev"],
            "--out",
            str(out),
            "--max-steps",
            "4",
            "--max-seq-length",
            "48",
            "--entity-markers",
            "typed",
            *TRAINING_FLAGS,
        ]
    )
    assert code == 0
    assert (out / "test_eval_metrics.json").is_file()
    tokenizer = load_tokenizer(out / "tokenizer")
    assert tokenizer.token_to_id("<subj:PER>") is not None and tokenizer.token_to_id("<subj>") is None


def test_a_label_training_never_saw_stops_before_any_work(init_run, files, tmp_path, capsys):
    records = json.loads(Path(files["dev"]).read_text(encoding="utf-8"))
    records[2]["label"] = "per:spouse"
    dev = write_json_array(tmp_path / "dev.json", records)
    code = main(["finetune", "--task", "relation-extraction", "--init", str(init_run), "--train", files["train"], "--eval", dev])
    code = code if code is not None else 0
    assert code != 0
    err = capsys.readouterr().err
    assert "dev.json record 3 has the label 'per:spouse'" in err
    assert not (tmp_path / "out").exists()


def test_a_saved_hugging_face_dataset_with_entity_objects_reads_like_the_json(tmp_path):
    datasets = pytest.importorskip("datasets")
    records = klue_records(10, seed=5)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records)}).save_to_disk(str(tmp_path / "klue-re"))
    from_dataset = read_relation_source(str(tmp_path / "klue-re"), "train")
    assert from_dataset.examples == read_relation_source(write_jsonl(tmp_path / "same.jsonl", records), None).examples


def test_prefine_serve_answers_relation_records_with_entities_as_objects_or_json_text(run, files):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    import asyncio

    from prefine.inference import load_run
    from prefine.serve.app import ServeLimits, create_app
    from prefine.serve.models import RunReference, load_served_model

    app = create_app([load_served_model(RunReference.parse(f"re={run}", ""), "cpu")], ServeLimits(), "", None)
    record = json.loads(Path(files["dev_jsonl"]).read_text(encoding="utf-8").splitlines()[0])
    inputs = [{key: record[key] for key in ("sentence", "subject_entity", "object_entity")}]
    # A form sends every field as text: the entities then arrive as JSON strings.
    inputs.append({**inputs[0], "subject_entity": json.dumps(record["subject_entity"], ensure_ascii=False)})

    async def requests():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                listed = (await client.get("/v1/models")).json()["models"]
                return listed, await client.post("/v1/predict", json={"model": "re", "inputs": inputs})

    listed, answer = asyncio.run(requests())
    assert listed[0]["task"] == "relation-extraction" and listed[0]["input_fields"] == ["sentence", "subject_entity", "object_entity"]
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    expected = load_run(run).predict_records(inputs[:1])[0]
    assert [output["label"] for output in outputs] == [expected["label"]] * 2
    assert outputs[1]["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
