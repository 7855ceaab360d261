"""Classification reads every GLUE task's TSV files and KLUE's YNAT, NLI and STS JSON as published, and scores them as the suites do.

Each GLUE writer below copies the layout `download_glue_data.py` leaves on disk (header or none,
column names, raw quotes and parse trees in the fields), with rows taken from or shaped like the
real files; the KLUE writers copy the v1.1 JSON arrays of the KLUE-benchmark repository. The
flags are the ones a user (or `prefine suite`) passes for that task. The metric checks compare
with scikit-learn, the reference the suites' own scripts call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.metrics.classification import classification_metrics, f1_at_threshold, regression_metrics
from prefine.tasks.classification import (
    ClassificationDataConfig,
    ClassificationFinetuneTask,
    ClassificationPredictConfig,
    LabelSet,
    evaluation_metrics,
    read_classification_inputs,
)
from tests.conftest import write_tiny_bert_run

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def tsv(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------
# GLUE, as download_glue_data.py writes it


def write_cola(folder: Path) -> dict[str, str]:
    # No header in train/dev: source, label, the original mark (* for unacceptable), sentence. test.tsv has one.
    rows = [
        "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.",
        "gj04\t1\t\tOne more pseudo generalization and I'm giving up.",
        "gj04\t0\t*\tThey drank the pub.",
        'clc95\t0\t*\tThe more "you eat", the more you want.',
    ]
    return {
        "train": tsv(folder / "train.tsv", rows),
        "dev": tsv(folder / "dev.tsv", rows[1:]),
        "test": tsv(folder / "test.tsv", ["index\tsentence", "0\tBill whistled past the house.", '1\tThe "car" honked.']),
    }


GLUE_TABLES = {
    # task: (header, rows, flags, (text, pair, label) expected, labels expected)
    "SST-2": (
        "sentence\tlabel",
        ["hide new secretions from the parental units \t0", '" a gorgeously strange movie , heaven is deeply concerned \t1'],
        {},
        ("sentence", None, "label"),
        ["0", "1"],
    ),
    "MRPC": (
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        [
            '1\t702876\t702977\tAmrozi accused his brother , whom he called " the witness " , of deliberately distorting his evidence .\t'
            'Referring to him as only " the witness " , Amrozi accused his brother of deliberately distorting his evidence .',
            "0\t2108705\t2108831\tYucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .\t"
            "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion in 1998 .",
        ],
        {"text_column": "#1 String", "text_pair_column": "#2 String", "label_column": "Quality"},
        ("#1 String", "#2 String", "Quality"),
        ["1", "0"],
    ),
    "QQP": (
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        [
            "133273\t213221\t213222\tHow is the life of a math student? Could you describe your own experiences?\t"
            "Which level of prepration is enough for the exam jlpt5?\t0",
            '402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your "horniness"?\t1',
        ],
        {"label_column": "is_duplicate"},
        ("question1", "question2", "is_duplicate"),
        ["0", "1"],
    ),
    "STS-B": (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        [
            "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000",
            "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing a large flute.\tA man is playing a flute.\t3.800",
        ],
        {},
        ("sentence1", "sentence2", "score"),
        ["5.000", "3.800"],
    ),
    "QNLI": (
        "index\tquestion\tsentence\tlabel",
        [
            "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it, the series was darker.\tnot_entailment",
            '1\tWhat is the name of the "Ford" plant?\tThe "Ford" plant is called River Rouge.\tentailment',
        ],
        {},
        ("question", "sentence", "label"),
        ["not_entailment", "entailment"],
    ),
    "RTE": (
        "index\tsentence1\tsentence2\tlabel",
        ["0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment"],
        {},
        ("sentence1", "sentence2", "label"),
        ["not_entailment"],
    ),
    "WNLI": (
        "index\tsentence1\tsentence2\tlabel",
        ["0\tI stuck a pin through a carrot. When I pulled the pin out, it had a hole.\tThe carrot had a hole.\t1"],
        {},
        ("sentence1", "sentence2", "label"),
        ["1"],
    ),
}

MNLI_COLUMNS = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)
MNLI_PAIR = (
    "( ( Conceptually cream ) skimming )\t( ( Product and ) geography )\t(ROOT (S (NP (JJ Conceptually) (NN cream))))\t"
    '(ROOT (S (NP (NN Product))))\tConceptually cream skimming has "two" basic dimensions.\tProduct and geography are what make it work.'
)


def write_mnli(folder: Path) -> dict[str, str]:
    # train.tsv has one annotator label, the dev files five; gold_label is last in both.
    return {
        "train": tsv(
            folder / "train.tsv",
            [MNLI_COLUMNS + "\tlabel1\tgold_label", f"0\t31193\t31193n\tgovernment\t{MNLI_PAIR}\tneutral\tneutral"],
        ),
        **{
            name: tsv(
                folder / f"{name}.tsv",
                [
                    MNLI_COLUMNS + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label",
                    f"0\t63735\t63735n\tslate\t{MNLI_PAIR}\tneutral\tentailment\tneutral\tneutral\tneutral\tneutral",
                ],
            )
            for name in ("dev_matched", "dev_mismatched")
        },
    }


@pytest.mark.parametrize("task", sorted(GLUE_TABLES))
def test_every_glue_tsv_reads_with_its_columns_and_raw_quotes(tmp_path, task):
    header, rows, flags, (text, pair, label), labels = GLUE_TABLES[task]
    path = tsv(tmp_path / task / "dev.tsv", [header, *rows])
    inputs = read_classification_inputs(path, ClassificationDataConfig(**flags))
    assert (inputs.columns.text, inputs.columns.text_pair, inputs.columns.label) == (text, pair, label)
    assert inputs.raw_labels == labels
    fields = [row.split("\t") for row in rows]
    names = header.split("\t")
    assert inputs.texts == [row[names.index(text)] for row in fields]  # quotes kept as written, not read as CSV quoting
    if pair is not None:
        assert inputs.text_pairs == [row[names.index(pair)] for row in fields]


def test_glue_cola_reads_without_a_header_through_columns(tmp_path):
    files = write_cola(tmp_path / "CoLA")
    config = ClassificationDataConfig(columns="source,label,mark,sentence")
    train = read_classification_inputs(files["train"], config)
    assert (train.columns.text, train.columns.text_pair, train.columns.label) == ("sentence", None, "label")
    assert train.raw_labels == ["1", "1", "0", "0"]
    assert train.texts[3] == 'The more "you eat", the more you want.'
    assert train.table.where(0) == "line 1"
    # The test file has a header: a prediction reads it with --columns header.
    test = read_classification_inputs(
        files["test"], config, columns=train.columns.__class__("sentence", None, None), need_label=False, column_names=None
    )
    assert test.texts == ["Bill whistled past the house.", 'The "car" honked.']
    assert ClassificationPredictConfig(columns="header").column_names(config.column_names) is None
    assert ClassificationPredictConfig().column_names(config.column_names) == ["source", "label", "mark", "sentence"]
    assert ClassificationPredictConfig(columns="index,sentence").column_names(None) == ["index", "sentence"]
    # Without --columns the first record is taken for the header: the error says that is the likely problem.
    with pytest.raises(PrefineError, match="its first line looks like a record, not a header .*needs --columns"):
        read_classification_inputs(files["train"], ClassificationDataConfig())
    with pytest.raises(PrefineError, match="has no label column 'label'.*its first line looks like a record"):
        read_classification_inputs(files["train"], ClassificationDataConfig(text_column="gj04", label_column="label"))


def test_columns_flag_refuses_bad_names_before_any_reading():
    with pytest.raises(PrefineError, match="names label more than once"):
        ClassificationDataConfig(columns="source,label,label,sentence")
    with pytest.raises(PrefineError, match="has an empty name"):
        ClassificationDataConfig(columns="source,,mark,sentence")


def test_glue_mnli_train_and_both_dev_files_read_with_the_same_columns(tmp_path):
    files = write_mnli(tmp_path / "MNLI")
    config = ClassificationDataConfig()
    train = read_classification_inputs(files["train"], config)
    assert (train.columns.text, train.columns.text_pair, train.columns.label) == ("sentence1", "sentence2", "gold_label")
    assert train.texts == ['Conceptually cream skimming has "two" basic dimensions.']
    for name in ("dev_matched", "dev_mismatched"):
        dev = read_classification_inputs(files[name], config, columns=train.columns)
        assert dev.raw_labels == ["neutral"] and dev.text_pairs == ["Product and geography are what make it work."]


def test_a_glue_row_missing_fields_names_its_line(tmp_path):
    path = tsv(tmp_path / "dev_matched.tsv", [MNLI_COLUMNS + "\tlabel1\tgold_label", f"0\t1\t1n\tslate\t{MNLI_PAIR}\tneutral"])
    with pytest.raises(PrefineError, match=r"dev_matched.tsv line 2 has 11 columns but the header has 12"):
        read_classification_inputs(path, ClassificationDataConfig())


# ---------------------------------------------------------------------------------------------
# KLUE v1.1 JSON arrays


def write_json(path: Path, records: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    return str(path)


YNAT = [
    {
        "guid": "ynat-v1_train_00000",
        "title": "유튜브 내달 2일까지 크리에이터 지원 공간 운영",
        "predefined_news_category": "생활문화",
        "label": "생활문화",
        "annotations": {"annotators": ["07", "13", "03"], "annotations": {"first-scope": ["생활문화"]}},
        "url": "https://news.naver.com/main/read.nhn?mode=LS2D&mid=shm&sid1=103",
        "date": "2016.06.30. 오전 10:36",
    },
    {
        "guid": "ynat-v1_train_00001",
        "title": "어버이날 맑다가 흐려져…남부지방 옅은 황사",
        "predefined_news_category": "생활문화",
        "label": "사회",
        "annotations": {"annotators": ["01", "13", "06"], "annotations": {"first-scope": ["사회"]}},
        "url": "https://news.naver.com/main/read.nhn?mode=LS2D&mid=shm&sid1=103",
        "date": "2016.05.08. 오전 5:25",
    },
]
NLI = [
    {
        "guid": "klue-nli-v1_train_00000",
        "genre": "NSMC",
        "premise": "힛걸 진심 최고다 그 어떤 히어로보다 멋지다",
        "hypothesis": "힛걸 진심 최고로 멋지다.",
        "gold_label": "entailment",
        "author": "entailment",
        "label2": "entailment",
        "label3": "entailment",
        "label4": "entailment",
        "label5": "entailment",
    },
    {
        "guid": "klue-nli-v1_train_00001",
        "genre": "NSMC",
        "premise": "100분간 잘껄 그래도 소닉붐땜에 2점준다",
        "hypothesis": "100분간 잤다.",
        "gold_label": "contradiction",
        "author": "contradiction",
        "label2": "contradiction",
        "label3": "contradiction",
        "label4": "contradiction",
        "label5": "contradiction",
    },
]
STS = [
    {
        "guid": "klue-sts-v1_train_00000",
        "source": "airbnb-rtt",
        "sentence1": "숙소 위치는 찾기 쉽고 일반적인 한국의 반지하 숙소입니다.",
        "sentence2": "숙박시설의 위치는 쉽게 찾을 수 있고 한국의 대표적인 반지하 숙박시설입니다.",
        "labels": {"label": 3.7, "real-label": 3.714285714285714, "binary-label": 1},
        "annotations": {"agreement": "0:0:0:2:5:0", "annotators": ["07", "13", "15"], "annotation": [3, 4, 4]},
    },
    {
        "guid": "klue-sts-v1_train_00001",
        "source": "policy-sampled",
        "sentence1": "위반행위 조사 등을 거부·방해·기피한 자는 500만원 이하 과태료 부과 대상이다.",
        "sentence2": "시민들 스스로 자발적인 예방 노력을 한 것은 아산 뿐만이 아니었다.",
        "labels": {"label": 0.0, "real-label": 0.0, "binary-label": 0},
        "annotations": {"agreement": "6:0:0:0:0:0", "annotators": ["11", "14", "16"], "annotation": [0, 0, 0]},
    },
    {
        "guid": "klue-sts-v1_train_00002",
        "source": "paraKQC-sampled",
        "sentence1": "회사가 보낸 메일은 이 지메일이 아니라 다른 지메일 계정으로 전달해줘.",
        "sentence2": "사람들이 주로 네이버 메일을 쓰는 이유를 알려줘",
        "labels": {"label": 0.3, "real-label": 0.333333333333333, "binary-label": 0},
        "annotations": {"agreement": "4:2:0:0:0:0", "annotators": ["11", "14", "16"], "annotation": [0, 0, 1]},
    },
]


def test_klue_ynat_reads_its_title_and_label_from_the_json_array(tmp_path):
    path = write_json(tmp_path / "ynat-v1.1_train.json", YNAT)
    inputs = read_classification_inputs(path, ClassificationDataConfig(text_column="title"))
    assert inputs.texts == [record["title"] for record in YNAT]
    assert inputs.columns.label == "label" and inputs.raw_labels == ["생활문화", "사회"]
    assert inputs.table.where(1) == "record 2"


def test_klue_nli_reads_premise_and_hypothesis_as_a_pair(tmp_path):
    path = write_json(tmp_path / "klue-nli-v1.1_train.json", NLI)
    inputs = read_classification_inputs(path, ClassificationDataConfig())
    assert (inputs.columns.text, inputs.columns.text_pair, inputs.columns.label) == ("premise", "hypothesis", "gold_label")
    assert inputs.text_pairs == ["힛걸 진심 최고로 멋지다.", "100분간 잤다."]
    assert inputs.raw_labels == ["entailment", "contradiction"]


def test_klue_sts_reads_the_nested_real_label_as_a_regression(tmp_path):
    path = write_json(tmp_path / "klue-sts-v1.1_train.json", STS)
    config = ClassificationDataConfig(label_column="labels.real-label", binary_threshold=3.0)
    inputs = read_classification_inputs(path, config)
    assert (inputs.columns.text, inputs.columns.text_pair) == ("sentence1", "sentence2")
    label_set = LabelSet.from_training_labels(inputs.required_labels())
    assert label_set.is_regression
    assert label_set.encode(inputs.required_labels(), path).tolist() == pytest.approx([3.714285714285714, 0.0, 0.333333333333333])
    with pytest.raises(PrefineError, match=r"'labels' has no field 'real_label' \(its fields: label, real-label, binary-label\)"):
        read_classification_inputs(path, ClassificationDataConfig(label_column="labels.real_label"))
    # Without --label-column the "labels" object is not taken for the label: the error lists its dotted fields.
    with pytest.raises(PrefineError, match=r"holds the label \(columns: .*labels\.real-label.*\); choose one with --label-column"):
        read_classification_inputs(path, ClassificationDataConfig())


def test_binary_threshold_on_class_labels_is_refused_before_training(tmp_path):
    path = write_json(tmp_path / "klue-sts-v1.1_train.json", STS)
    config = ClassificationDataConfig(label_column="labels.binary-label", binary_threshold=3.0)
    with pytest.raises(PrefineError, match="--binary-threshold scores a regression, but .* holds class labels \\(0, 1\\)"):
        ClassificationFinetuneTask().check_inputs(path, None, config)
    with pytest.raises(PrefineError, match="--binary-threshold scores a regression; drop it or use --task-type regression"):
        ClassificationDataConfig(binary_threshold=3.0, task_type="classification")


# ---------------------------------------------------------------------------------------------
# The suites' metrics, against scikit-learn


def test_mcc_equals_scikit_learn_for_two_and_more_classes():
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5):
        for _ in range(30):
            gold, predicted = rng.integers(0, classes, 60), rng.integers(0, classes, 60)
            ours = classification_metrics(gold, predicted, [str(index) for index in range(classes)])["mcc"]
            assert ours == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, predicted), abs=1e-12)
    # A single predicted class: scikit-learn's 0, not a division by zero.
    assert classification_metrics([0, 1, 1], [1, 1, 1], ["0", "1"])["mcc"] == 0.0


def test_f1_at_threshold_equals_scikit_learn_on_binarised_scores():
    rng = np.random.default_rng(1)
    for _ in range(30):
        gold, predicted = rng.uniform(0, 5, 80).round(1), rng.uniform(0, 5, 80)
        reference = sklearn_metrics.f1_score(gold >= 3.0, predicted >= 3.0)
        assert f1_at_threshold(gold, predicted, 3.0) == pytest.approx(reference, abs=1e-12)
    assert f1_at_threshold([3.0], [2.999], 3.0) == 0.0 and f1_at_threshold([3.0], [3.0], 3.0) == 1.0  # >=, as KLUE
    assert "f1_at_threshold" not in regression_metrics([1.0, 4.0], [2.0, 3.0])


def test_evaluation_reports_mcc_and_f1_at_threshold():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.0], [0.0, 3.0]])
    metrics = evaluation_metrics(logits, np.array([0, 1, 1, 1]), LabelSet(["0", "1"]))
    assert metrics["mcc"] == pytest.approx(sklearn_metrics.matthews_corrcoef([0, 1, 1, 1], [0, 1, 0, 1]))
    scores = np.array([[3.2], [1.0], [4.5], [2.9]])
    gold = np.array([3.7, 0.0, 3.0, 3.1], dtype=np.float32)
    regression = evaluation_metrics(scores, gold, LabelSet([], is_regression=True), binary_threshold=3.0)
    assert regression["f1_at_threshold"] == pytest.approx(sklearn_metrics.f1_score(gold >= 3.0, scores[:, 0] >= 3.0))


# ---------------------------------------------------------------------------------------------
# End to end: finetune, evaluate and predict on the official layouts


@pytest.fixture(scope="module")
def init_run(tmp_path_factory) -> Path:
    texts = [row.split("\t")[-1] for row in GLUE_TABLES["SST-2"][1]] + [record["sentence1"] for record in STS] * 3
    return write_tiny_bert_run(tmp_path_factory.mktemp("init") / "init", texts * 4)


TRAINING = [
    "--max-seq-length",
    "64",
    "--max-steps",
    "4",
    "--batch-size",
    "2",
    "--eval-every",
    "2",
    "--num-threads",
    "1",
    "--no-progress",
    "--seed",
    "0",
]


def test_cola_finetunes_from_headerless_files_and_predicts_a_file_with_a_header(tmp_path, init_run, capsys):
    torch.manual_seed(0)
    files = write_cola(tmp_path / "CoLA")
    run = tmp_path / "cola"
    arguments = ["finetune", "--init", str(init_run), "--train", files["train"], "--eval", files["dev"], "--out", str(run)]
    assert main([*arguments, "--columns", "source,label,mark,sentence", "--best-metric", "mcc", *TRAINING]) == 0
    saved = json.loads((run / "run.json").read_text())
    assert saved["data"]["columns"] == "source,label,mark,sentence"
    assert "mcc" in json.loads((run / "eval_metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", files["dev"]]) == 0  # the run's --columns read the headerless dev file
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert -1.0 <= scores["mcc"] <= 1.0 and scores["num_examples"] == 3
    assert main(["predict", str(run), "--data", files["test"], "--columns", "header"]) == 0
    predictions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [prediction["text"] for prediction in predictions] == ["Bill whistled past the house.", 'The "car" honked.']
    assert main(["predict", str(run), "--data", files["test"]]) == 2  # read as the training files were: no header, 4 columns
    assert "test.tsv line 1 has 2 columns but --columns names 4" in capsys.readouterr().err


def test_klue_sts_finetunes_on_the_nested_label_and_reports_f1_at_threshold(tmp_path, init_run, capsys):
    path = write_json(tmp_path / "klue-sts-v1.1_train.json", STS * 2)
    run = tmp_path / "sts"
    arguments = ["finetune", "--init", str(init_run), "--train", path, "--eval", path, "--out", str(run)]
    assert main([*arguments, "--label-column", "labels.real-label", "--binary-threshold", "3.0", *TRAINING]) == 0
    report = json.loads((run / "eval_metrics.json").read_text())
    assert 0.0 <= report["f1_at_threshold"] <= 1.0 and "pearson" in report
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", path]) == 0
    assert "f1_at_threshold" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
