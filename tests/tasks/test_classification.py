"""Classification task: reading and labelling data, encoding, batching, prediction, fine-tuning end to end."""

from __future__ import annotations

import io
import json
import random
import sys

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

from prefine.checkpoint import METRICS_FILE, best_checkpoint
from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.model.config import BertConfig
from prefine.model.heads import BertForSequenceClassification
from prefine.tasks.classification import (
    ClassificationBatches,
    ClassificationDataConfig,
    ClassificationTask,
    EncodedExamples,
    LabelSet,
    encode_examples,
    load_classification_data,
    predict_logits,
    probabilities_from_logits,
    read_classification_inputs,
    write_predictions,
)
from prefine.tasks.task_data import read_records
from prefine.tasks.text_inputs import sequential_batches
from prefine.training import DistributedContext, TrainingConfig, train

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FILLER_WORDS = "the movie was plot actors story film really quite very some scenes music ending director script".split()
KOREAN_SENTENCES = [
    "이 영화 정말 재미있어요",
    "배우들의 연기가 훌륭했습니다",
    "스토리가 너무 지루했어요",
    "다시는 보고 싶지 않아요",
    "음악과 영상이 아름다웠다",
    "시간 낭비였습니다",
]


def train_wordpiece(lines: list[str], vocab_size: int = 400) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        lines, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tokenizer


def synthetic_reviews(count: int, seed: int) -> list[tuple[str, str]]:
    """(text, label): the label is whether the review says "good" or "bad" among filler words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(FILLER_WORDS, k=rng.randint(3, 12))
        words.insert(rng.randint(0, len(words)), "good" if label == "pos" else "bad")
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    lines = [text for text, _ in synthetic_reviews(300, seed=0)] + ["good bad a b c d e f g h long word pieces"]
    return train_wordpiece(lines)


@pytest.fixture(scope="module")
def korean_tokenizer() -> Tokenizer:
    return train_wordpiece(KOREAN_SENTENCES * 5 + ["긍정 부정"], vocab_size=300)


def write_tsv(path, header: list[str], rows: list[tuple]) -> str:
    lines = ["\t".join(header)] + ["\t".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def examples_with_ids(lengths: list[int], vocab: int = 50) -> EncodedExamples:
    """Examples of the given lengths whose label is their own index, so batches reveal which examples they hold."""
    lengths_array = np.asarray(lengths, dtype=np.int64)
    total = int(lengths_array.sum())
    rng = np.random.default_rng(0)
    return EncodedExamples(
        input_ids=rng.integers(5, vocab, total).astype(np.int32),
        token_type_ids=np.zeros(total, dtype=np.int8),
        offsets=np.concatenate([[0], np.cumsum(lengths_array)]),
        labels=np.arange(len(lengths), dtype=np.int64),
    )


def tiny_model(tokenizer: Tokenizer, num_labels: int, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertForSequenceClassification(config, num_labels)


# ---------------------------------------------------------------------------------------------
# Labels


def test_integer_labels_sort_numerically_and_round_trip_through_json():
    labels = LabelSet.from_training_labels(["10", "2", "0", "1", "2"])
    assert labels.names == ["0", "1", "2", "10"] and not labels.is_regression
    assert labels.encode(["0", "10", " 2 "], "eval").tolist() == [0, 3, 2]
    saved = json.loads(json.dumps(labels.to_json()))
    assert saved["id2label"] == {"0": "0", "1": "1", "2": "2", "3": "10"}
    assert saved["label2id"]["10"] == 3
    assert LabelSet.from_json(saved) == labels


def test_string_labels_sort_as_strings_and_round_trip():
    labels = LabelSet.from_training_labels(["pos", "neg", "neutral", "pos"])
    assert labels.names == ["neg", "neutral", "pos"]
    assert labels.encode(["pos", "neg"], "eval").tolist() == [2, 0]
    assert LabelSet.from_json(json.loads(json.dumps(labels.to_json()))) == labels


def test_single_class_and_empty_labels_are_errors():
    with pytest.raises(PrefineError, match="single label value"):
        LabelSet.from_training_labels(["pos", "pos"])
    with pytest.raises(PrefineError, match="empty label"):
        LabelSet.from_training_labels(["pos", "", "neg"])


def test_unseen_eval_label_names_file_line_and_known_labels(tmp_path, tokenizer):
    train_path = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [("good film", "pos"), ("bad film", "neg")])
    eval_path = write_tsv(tmp_path / "eval.tsv", ["sentence", "label"], [("good", "pos"), ("meh", "neutral")])
    with pytest.raises(PrefineError) as error:
        load_classification_data(train_path, eval_path, ClassificationDataConfig(), tokenizer)
    message = str(error.value)
    assert "eval.tsv has label 'neutral' (line 3) not seen in training (labels: neg, pos)" in message
    assert "\n" not in message


def test_regression_is_detected_from_fractional_labels_and_encodes_floats():
    labels = LabelSet.from_training_labels(["0.5", "3.8", "2", "5.000"])
    assert labels.is_regression and labels.num_labels == 1
    assert labels.encode(["1.25", "4"], "eval").dtype == np.float32
    assert labels.encode(["1.25", "4"], "eval").tolist() == [1.25, 4.0]
    assert LabelSet.from_json(labels.to_json()) == labels
    assert labels.to_json()["problem_type"] == "regression"
    # Whole numbers stay classes; the task type can force either reading.
    assert not LabelSet.from_training_labels(["1", "2", "3"]).is_regression
    assert LabelSet.from_training_labels(["1", "2", "3"], task_type="regression").is_regression
    assert LabelSet.from_training_labels(["0.5", "1.5"], task_type="classification").names == ["0.5", "1.5"]
    with pytest.raises(PrefineError, match="'pos'.*not a number"):
        LabelSet.from_training_labels(["1.5", "pos"], task_type="regression")
    with pytest.raises(PrefineError, match="'high' \\(line 7\\), which is not a number"):
        labels.encode(["1.0", "high"], "eval.tsv", lambda index: f"line {index + 6}")


# ---------------------------------------------------------------------------------------------
# Reading and columns


def test_columns_are_detected_for_single_texts_and_pairs(tmp_path, capsys):
    config = ClassificationDataConfig()
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('id,review,sentiment\n1,"great, really great",positive\n2,awful,negative\n', encoding="utf-8")
    inputs = read_classification_inputs(str(csv_path), config)
    assert (inputs.columns.text, inputs.columns.text_pair, inputs.columns.label) == ("review", None, "sentiment")
    assert inputs.texts == ["great, really great", "awful"]
    assert "review" in capsys.readouterr().err  # the choice is announced

    mrpc = write_tsv(tmp_path / "mrpc.tsv", ["idx", "sentence1", "sentence2", "label"], [(0, "a b", "c d", 1), (1, "e", "f", 0)])
    inputs = read_classification_inputs(mrpc, config)
    assert (inputs.columns.text, inputs.columns.text_pair, inputs.columns.label) == ("sentence1", "sentence2", "label")
    assert inputs.text_pairs == ["c d", "f"]

    qnli = write_tsv(tmp_path / "qnli.tsv", ["question", "sentence", "label"], [("who?", "him.", "entailment")])
    inputs = read_classification_inputs(qnli, config)
    assert (inputs.columns.text, inputs.columns.text_pair) == ("question", "sentence")


def test_wrong_column_lists_the_available_ones(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [("good", "pos")])
    with pytest.raises(PrefineError, match="has no text column 'body'; available columns: sentence, label; choose one with --text-column"):
        read_classification_inputs(path, ClassificationDataConfig(text_column="body"))
    unlabeled = write_tsv(tmp_path / "unlabeled.tsv", ["sentence", "source"], [("good", "web")])
    with pytest.raises(PrefineError, match="which column .* holds the label \\(columns: sentence, source\\)"):
        read_classification_inputs(unlabeled, ClassificationDataConfig())
    # Prediction inputs need no label column.
    assert read_classification_inputs(unlabeled, ClassificationDataConfig(), need_label=False).raw_labels is None


def test_tsv_keeps_raw_quotes_and_unwraps_csv_style_quoting(tmp_path):
    path = tmp_path / "sst2.tsv"
    path.write_text('sentence\tlabel\n"the film\'s " charm\t1\n"quoted, ""fully"""\t0\n"Go," he said, "now"\t1\n\n', encoding="utf-8")
    table = read_records(path)
    assert table.columns["sentence"] == ['"the film\'s " charm', 'quoted, "fully"', '"Go," he said, "now"']
    assert table.line_numbers.tolist() == [2, 3, 4]


def test_reading_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(PrefineError, match="does not exist"):
        read_records(tmp_path / "missing.tsv")
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    with pytest.raises(PrefineError, match="empty.tsv is empty"):
        read_records(tmp_path / "empty.tsv")
    (tmp_path / "header_only.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(PrefineError, match="holds no records"):
        read_records(tmp_path / "header_only.csv")
    (tmp_path / "latin1.tsv").write_bytes("text\tlabel\ncafé\t1\n".encode("latin-1"))
    with pytest.raises(PrefineError, match="latin1.tsv line 2 is not valid UTF-8"):
        read_records(tmp_path / "latin1.tsv")
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label"\n', encoding="utf-8")
    with pytest.raises(PrefineError, match="broken.jsonl line 2 is not JSON"):
        read_records(tmp_path / "broken.jsonl")
    (tmp_path / "ragged.tsv").write_text("text\tlabel\na\t1\nb\t0\textra\n", encoding="utf-8")
    with pytest.raises(PrefineError, match="ragged.tsv line 3 has 3 columns but the header has 2"):
        read_records(tmp_path / "ragged.tsv")
    (tmp_path / "gap.jsonl").write_text('{"text": "a", "label": 1}\n{"label": 0}\n', encoding="utf-8")
    with pytest.raises(PrefineError, match="gap.jsonl line 2 has no 'text' value"):
        read_classification_inputs(str(tmp_path / "gap.jsonl"), ClassificationDataConfig())


def test_jsonl_values_become_text(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "좋아요", "label": 1}\n\n{"text": "별로", "label": 0, "extra": true}\n', encoding="utf-8")
    table = read_records(path)
    assert table.columns == {"text": ["좋아요", "별로"], "label": ["1", "0"], "extra": [None, "true"]}
    assert table.line_numbers.tolist() == [1, 3]


def test_saved_dataset_folder_is_read_with_class_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])})
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0]}, features=features)})
    dataset.save_to_disk(str(tmp_path / "saved"))
    table = read_records(str(tmp_path / "saved"), split="train")
    assert table.columns == {"sentence": ["good", "bad"], "label": ["positive", "negative"]}
    assert table.where(1) == "row 2"
    with pytest.raises(PrefineError, match="no split 'test'; available splits: train"):
        read_records(str(tmp_path / "saved"), split="test")


def test_missing_datasets_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(PrefineError, match=r"pip install 'prefine\[datasets\]'"):
        read_records("some-user/some-dataset:train")


# ---------------------------------------------------------------------------------------------
# Encoding


def test_pairs_are_encoded_like_nsp_inputs(tokenizer):
    first, second = "the movie was good", "really bad ending"
    encoded = encode_examples([first, "film"], [second, "plot"], tokenizer, max_seq_length=64)
    reference = tokenizer.encode(first, second)
    assert encoded.example_ids(0) == reference.ids
    types = encoded.token_type_ids[encoded.offsets[0] : encoded.offsets[1]].tolist()
    first_length = len(tokenizer.encode(first, add_special_tokens=False).ids) + 2  # [CLS] A [SEP]
    assert types == [0] * first_length + [1] * (len(reference.ids) - first_length)
    assert reference.ids[0] == tokenizer.token_to_id("[CLS]") and reference.ids[first_length - 1] == tokenizer.token_to_id("[SEP]")


def test_truncation_to_max_seq_length_leaves_the_tokenizer_alone(tokenizer):
    long_text = " ".join(FILLER_WORDS * 4)
    encoded = encode_examples([long_text, "good"], None, tokenizer, max_seq_length=16)
    assert encoded.lengths.tolist() == [16, 3]
    assert encoded.example_ids(0)[-1] == tokenizer.token_to_id("[SEP]")
    pairs = encode_examples([long_text, "good"], [long_text, long_text], tokenizer, max_seq_length=20)
    assert pairs.lengths.tolist() == [20, 20]
    # longest_first: the long second text is cut, the one-word first text survives whole.
    assert pairs.example_ids(1)[:3] == tokenizer.encode("good").ids
    assert tokenizer.truncation is None and tokenizer.padding is None


def test_korean_tsv_is_read_and_encoded_without_unknown_tokens(tmp_path, korean_tokenizer):
    rows = [(sentence, "긍정" if index % 2 == 0 else "부정") for index, sentence in enumerate(KOREAN_SENTENCES)]
    train_path = write_tsv(tmp_path / "korean.tsv", ["document", "label"], rows)
    train, evaluation, labels, columns = load_classification_data(train_path, train_path, ClassificationDataConfig(), korean_tokenizer)
    assert columns.text == "document" and labels.names == ["긍정", "부정"]
    assert korean_tokenizer.token_to_id("[UNK]") not in train.input_ids.tolist()
    assert len(train) == len(evaluation) == len(KOREAN_SENTENCES)
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1]


# ---------------------------------------------------------------------------------------------
# Batches


def labels_of_epoch(batches: ClassificationBatches, epoch: int, world_size: int = 1) -> list[list[int]]:
    position, seen = DataPosition(epoch, 0), []
    while position.epoch == epoch:
        batch, position = batches.batch_at(position, 0, world_size)
        seen.append(batch["labels"].tolist())
    return seen


def test_every_epoch_covers_each_example_once_in_a_new_deterministic_order():
    examples = examples_with_ids([3 + (i * 7) % 40 for i in range(203)])
    batches = ClassificationBatches(examples, batch_size=16, pad_id=0, seed=1)
    first, second = labels_of_epoch(batches, 0), labels_of_epoch(batches, 1)
    for epoch in (first, second):
        assert sorted(sum(epoch, [])) == list(range(203))
        assert [len(batch) for batch in epoch] == [16] * 12 + [11]  # the partial batch is kept, last
    assert first != second
    assert labels_of_epoch(ClassificationBatches(examples, batch_size=16, pad_id=0, seed=1), 1) == second
    assert labels_of_epoch(ClassificationBatches(examples, batch_size=16, pad_id=0, seed=2), 1) != second


def test_subset_keeps_the_chosen_examples_in_order():
    examples = examples_with_ids([5, 2, 9, 1])
    subset = examples.subset(np.array([2, 0, 3]))
    assert [subset.example_ids(i) for i in range(3)] == [examples.example_ids(i) for i in (2, 0, 3)]
    assert subset.lengths.tolist() == [9, 5, 1] and subset.labels.tolist() == [2, 0, 3]


def test_batches_are_padded_to_their_longest_example_with_the_pad_id():
    examples = examples_with_ids([5, 2, 9])
    batch = examples.collate(np.array([1, 0]), pad_id=7)
    assert batch["input_ids"].shape == (2, 5) and batch["input_ids"].dtype == torch.int64
    assert batch["input_ids"][0].tolist() == examples.example_ids(1) + [7, 7, 7]
    assert batch["input_ids"][1].tolist() == examples.example_ids(0)
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["num_real_tokens"] == 7


def padded_tokens(batches: ClassificationBatches) -> int:
    position, padding = DataPosition(0, 0), 0
    while position.epoch == 0:
        batch, position = batches.batch_at(position, 0, 1)
        padding += batch["attention_mask"].numel() - batch["num_real_tokens"]
    return padding


def test_length_grouping_wastes_far_less_padding_than_random_batches():
    rng = np.random.default_rng(3)
    examples = examples_with_ids(rng.integers(4, 120, 1000).tolist())
    grouped = padded_tokens(ClassificationBatches(examples, batch_size=16, pad_id=0, seed=0, group_by_length=True))
    random_batches = padded_tokens(ClassificationBatches(examples, batch_size=16, pad_id=0, seed=0, group_by_length=False))
    assert grouped < random_batches / 4
    # The batch holding the longest example comes first, so memory limits show at step one.
    first_batch, _ = ClassificationBatches(examples, batch_size=16, pad_id=0, seed=0).batch_at(DataPosition(0, 0), 0, 1)
    assert first_batch["attention_mask"].shape[1] == int(examples.lengths.max())


def test_rank_slices_are_disjoint_and_make_up_the_global_batch():
    examples = examples_with_ids([3 + i % 17 for i in range(100)])
    batches = ClassificationBatches(examples, batch_size=8, pad_id=0, seed=5)
    position, covered = DataPosition(0, 0), []
    while position.epoch == 0:
        shares = [batches.batch_at(position, rank, 2) for rank in range(2)]
        rank0, rank1 = (share[0]["labels"].tolist() for share in shares)
        assert len(rank0) == len(rank1) == 4 and not set(rank0) & set(rank1)
        assert shares[0][1] == shares[1][1]
        single, _ = batches.batch_at(position, 0, 1)
        assert rank0 + rank1 == single["labels"].tolist()
        covered += rank0 + rank1
        position = shares[0][1]
    # Several processes drop the last partial batch so every rank gets a full share.
    assert len(covered) == len(set(covered)) == 96


def test_resuming_from_a_position_gives_the_same_batches():
    examples = examples_with_ids([2 + i % 23 for i in range(50)])
    position, uninterrupted, positions = DataPosition(0, 0), [], []
    batches = ClassificationBatches(examples, batch_size=16, pad_id=0, seed=9)
    for _ in range(10):  # crosses two epoch boundaries (4 batches per epoch)
        positions.append(position)
        batch, position = batches.batch_at(position, 0, 1)
        uninterrupted.append(batch["input_ids"])
    assert positions[4] == DataPosition(1, 0) and positions[3] == DataPosition(0, 48)
    # A checkpoint stores the position as two integers, and the loop rebuilds it from them.
    resumed_position = DataPosition(epoch=int(positions[6].epoch), offset=int(positions[6].offset))
    fresh = ClassificationBatches(examples, batch_size=16, pad_id=0, seed=9)
    for expected in uninterrupted[6:]:
        batch, resumed_position = fresh.batch_at(resumed_position, 0, 1)
        assert torch.equal(batch["input_ids"], expected)


def test_sequential_batches_visit_every_example_once_longest_first():
    examples = examples_with_ids([4, 9, 2, 9, 7])
    visited = list(sequential_batches(examples, batch_size=2, pad_id=0))
    assert [indices.tolist() for indices, _ in visited] == [[1, 3], [4, 0], [2]]
    assert [batch["labels"].tolist() for _, batch in visited] == [[1, 3], [4, 0], [2]]


# ---------------------------------------------------------------------------------------------
# Prediction


def test_predictions_keep_input_order_and_write_valid_jsonl_and_tsv(tokenizer):
    texts = ["good", "the movie was really quite bad and the ending very bad", "film", "some scenes were good\tmusic"]
    labels = LabelSet(["neg", "pos"])
    model = tiny_model(tokenizer, labels.num_labels)
    examples = encode_examples(texts, None, tokenizer, max_seq_length=32)
    model.eval()  # the caller's job, done once; prediction never switches the mode
    logits = predict_logits(model, examples, batch_size=3, device=torch.device("cpu"))
    assert not model.training
    with torch.no_grad():
        one_by_one = [model(torch.tensor([examples.example_ids(i)])).logits[0].numpy() for i in range(len(texts))]
    np.testing.assert_allclose(logits, np.stack(one_by_one), atol=1e-5)

    probabilities = probabilities_from_logits(logits, labels)
    out = io.StringIO()
    write_predictions(texts, probabilities, labels, out, "jsonl")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [record["text"] for record in records] == texts
    for record, row in zip(records, logits):
        assert set(record["probabilities"]) == {"neg", "pos"}
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["label"] == labels.names[int(np.argmax(row))]

    out = io.StringIO()
    write_predictions(texts, probabilities, labels, out, "tsv", text_pairs=["a", "b", "c", "d"])
    lines = out.getvalue().splitlines()
    assert lines[0].split("\t") == ["text", "text_pair", "label", "prob_neg", "prob_pos"]
    assert len(lines) == 5 and all(len(line.split("\t")) == 5 for line in lines)
    assert lines[4].startswith("some scenes were good music\td\t")


def test_regression_predictions_and_evaluation(tokenizer):
    labels = LabelSet([], is_regression=True)
    texts = ["good", "bad film", "the movie", "some scenes were good"]
    examples = encode_examples(texts, None, tokenizer, 32, labels.encode(["1.5", "0.0", "2.25", "4"], "eval"))
    model = tiny_model(tokenizer, labels.num_labels)
    task = ClassificationTask(ClassificationBatches(examples, 2, 0, 0), examples, labels, 2, torch.device("cpu"))
    batch, _ = task.batch_at(task.start_position(), 0, 1)
    assert batch["labels"].dtype == torch.float32
    loss, stats = task.loss(model, batch)
    assert loss.requires_grad and set(stats) == {"loss"}
    model.eval()  # as the loop does before evaluating
    metrics = task.evaluate(model)
    assert set(metrics) == {"loss", "mse", "pearson", "spearman"} and metrics["loss"] == metrics["mse"]
    scores = probabilities_from_logits(predict_logits(model, examples, 4, torch.device("cpu")), labels)
    assert metrics["mse"] == pytest.approx(float(np.mean((scores - examples.labels) ** 2)), rel=1e-5)
    out = io.StringIO()
    write_predictions(texts, scores, labels, out, "jsonl")
    assert [json.loads(line)["score"] for line in out.getvalue().splitlines()] == pytest.approx(scores.tolist())


# ---------------------------------------------------------------------------------------------
# Fine-tuning end to end


def test_fine_tuning_learns_a_keyword_task_and_keeps_the_best_checkpoint(tmp_path, tokenizer):
    train_path = write_tsv(tmp_path / "train.tsv", ["sentence", "label"], synthetic_reviews(200, seed=1))
    eval_path = write_tsv(tmp_path / "eval.tsv", ["sentence", "label"], synthetic_reviews(60, seed=2))
    train_examples, eval_examples, labels, _ = load_classification_data(
        train_path, eval_path, ClassificationDataConfig(max_seq_length=32), tokenizer
    )
    model = tiny_model(tokenizer, labels.num_labels)
    pad_id = tokenizer.token_to_id("[PAD]")
    task = ClassificationTask(ClassificationBatches(train_examples, 16, pad_id, seed=0), eval_examples, labels, 64, torch.device("cpu"))
    config = TrainingConfig(
        max_steps=120,
        batch_size=16,
        learning_rate=2e-3,
        warmup_steps=10,
        eval_every=20,
        save_every=0,
        keep_last=1,
        best_metric="accuracy",
        progress=False,
        seed=0,
        num_threads=1,  # a model this small only loses to thread synchronisation
    )
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    threads = torch.get_num_threads()
    try:
        result = train(model, task, config, tmp_path / "run", labels.to_json(), context)
    finally:
        torch.set_num_threads(threads)

    assert result.last_eval["accuracy"] >= 0.95
    assert set(result.last_eval) == {"loss", "accuracy", "macro_f1", "binary_f1", "mcc"}
    assert task.last_full_metrics["confusion_matrix"] and set(task.last_full_metrics["per_class"]) == {"neg", "pos"}
    evaluations = [
        record for record in map(json.loads, (tmp_path / "run" / METRICS_FILE).read_text().splitlines()) if "eval/accuracy" in record
    ]
    best_accuracy = max(record["eval/accuracy"] for record in evaluations)
    best_step = next(record["step"] for record in evaluations if record["eval/accuracy"] == best_accuracy)
    assert best_checkpoint(tmp_path / "run").name == f"step-{best_step:08d}"
    assert result.best_value == best_accuracy
