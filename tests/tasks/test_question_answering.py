"""QA on the training loop: seekable window batches, trimmed padding, span logits in window order, evaluation, dev splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.metrics.squad import evaluate_predictions
from prefine.model import BertConfig, BertForQuestionAnswering
from prefine.model.heads import SpanOutput
from prefine.tasks.interface import get_task
from prefine.tasks.qa_data import QAExample, QAFeatures, load_squad_json, prepare_features
from prefine.tasks.question_answering import (
    PADDING_LOGIT,
    DecodingConfig,
    QABatches,
    QADataConfig,
    QATask,
    predict_span_logits,
    window_lengths,
)
from prefine.tokenizer import TokenizerConfig, train_tokenizer

MAX_LENGTH = 32


def features_with_lengths(lengths: list[int]) -> QAFeatures:
    """Windows of the given real lengths whose start target is their own index, so batches reveal which windows they hold."""
    count = len(lengths)
    real = np.arange(MAX_LENGTH) < np.asarray(lengths)[:, None]
    rng = np.random.default_rng(0)
    return QAFeatures(
        input_ids=np.where(real, rng.integers(5, 50, (count, MAX_LENGTH)), 0).astype(np.int64),
        token_type_ids=np.where(real & (np.arange(MAX_LENGTH) > 3), 1, 0).astype(np.int64),
        attention_mask=real.astype(np.int64),
        start_positions=np.arange(count, dtype=np.int64),
        end_positions=np.arange(count, dtype=np.int64) + 1,
        example_index=np.arange(count, dtype=np.int64),
        offsets=np.full((count, MAX_LENGTH, 2), -1, dtype=np.int32),
    )


def windows_of(batch: dict) -> list[int]:
    return batch["start_positions"].tolist()


def one_epoch(batches: QABatches, epoch: int = 0, rank: int = 0, world_size: int = 1) -> list[dict]:
    position, collected = DataPosition(epoch, 0), []
    while position.epoch == epoch:
        batch, position = batches.batch_at(position, rank, world_size)
        collected.append(batch)
    return collected


def test_every_epoch_visits_each_window_once_in_a_new_seeded_order():
    lengths = list(np.random.default_rng(1).integers(8, MAX_LENGTH + 1, 37))
    batches = QABatches(features_with_lengths(lengths), batch_size=8, seed=3)
    first = [window for batch in one_epoch(batches, 0) for window in windows_of(batch)]
    second = [window for batch in one_epoch(batches, 1) for window in windows_of(batch)]
    assert sorted(first) == sorted(second) == list(range(37))
    assert first != second
    again = QABatches(features_with_lengths(lengths), batch_size=8, seed=3)
    assert [window for batch in one_epoch(again, 0) for window in windows_of(batch)] == first
    assert [window for batch in one_epoch(QABatches(features_with_lengths(lengths), 8, seed=4), 0) for window in windows_of(batch)] != first


def test_batches_are_trimmed_to_their_longest_window_without_losing_tokens():
    lengths = [5, 9, 12, 30, 7, 6, 11, 8]
    features = features_with_lengths(lengths)
    batches = QABatches(features, batch_size=3, seed=0)
    for batch in one_epoch(batches):
        windows = windows_of(batch)
        width = max(lengths[window] for window in windows)
        assert batch["input_ids"].shape == (len(windows), width)
        assert batch["input_ids"].dtype == torch.int64 and batch["attention_mask"].dtype == torch.int64
        assert np.array_equal(batch["input_ids"].numpy(), features.input_ids[windows, :width])
        assert np.array_equal(batch["token_type_ids"].numpy(), features.token_type_ids[windows, :width])
        assert batch["attention_mask"].sum().item() == batch["num_real_tokens"] == sum(lengths[window] for window in windows)
        assert batch["end_positions"].tolist() == [window + 1 for window in windows]


def test_resuming_from_a_position_gives_the_same_batches():
    features = features_with_lengths([10] * 21)
    straight = QABatches(features, batch_size=4, seed=7)
    position, expected, positions = DataPosition(0, 0), [], []
    for _ in range(9):  # crosses into the second epoch
        positions.append(position)
        batch, position = straight.batch_at(position, 0, 1)
        expected.append(windows_of(batch))
    resumed = QABatches(features, batch_size=4, seed=7)
    for step in (3, 5, 7):
        batch, _ = resumed.batch_at(positions[step], 0, 1)
        assert windows_of(batch) == expected[step]
    assert positions[6] == DataPosition(1, 0)  # 21 windows: five full batches and a partial one of 1


def test_rank_slices_are_disjoint_and_make_up_the_global_batch():
    features = features_with_lengths([12] * 26)
    batches = QABatches(features, batch_size=8, seed=0)
    global_batch, _ = batches.batch_at(DataPosition(0, 8), 0, 1)
    shares = [windows_of(batches.batch_at(DataPosition(0, 8), rank, 2)[0]) for rank in range(2)]
    assert shares[0] + shares[1] == windows_of(global_batch) and not set(shares[0]) & set(shares[1])
    epoch = one_epoch(batches, 0, rank=1, world_size=2)
    assert len(epoch) == 3  # 26 windows: the partial batch is dropped so every rank gets an equal share
    with pytest.raises(PrefineError, match="cannot be split evenly"):
        batches.batch_at(DataPosition(0, 0), 0, 3)


def test_no_training_windows_is_a_clear_error():
    with pytest.raises(PrefineError, match="no windows"):
        QABatches(features_with_lengths([]), batch_size=4, seed=0)


# ---------------------------------------------------------------------------------------------
# Prediction and evaluation

CONTEXTS = [
    "The apple is red. It was a quiet day in the village.",
    "A train left the station at noon. The sky is blue.",
    "사과의 색깔은 빨간색 입니다. 오늘은 조용한 날이었다.",
]


@pytest.fixture(scope="module")
def tokenizer():
    lines = CONTEXTS + ["What color is the apple? What color is the sky? 사과의 색깔은 무엇입니까?"] * 3
    return train_tokenizer(lines, TokenizerConfig(vocab_size=200, min_frequency=1), show_progress=False)


def qa_examples() -> list[QAExample]:
    questions = ["What color is the apple?", "What color is the sky?", "사과의 색깔은 무엇입니까?"]
    answers = ["red", "blue", "빨간색"]
    return [
        QAExample(f"q{number}", question, context, [{"text": answer, "answer_start": context.index(answer)}])
        for number, (question, context, answer) in enumerate(zip(questions, CONTEXTS, answers))
    ] + [
        QAExample(
            "long",
            questions[0],
            " ".join(CONTEXTS[1:] * 3) + " " + CONTEXTS[0],
            [{"text": "red", "answer_start": len(" ".join(CONTEXTS[1:] * 3)) + 1 + CONTEXTS[0].index("red")}],
        )
    ]


def tiny_qa_model(vocab_size: int) -> BertForQuestionAnswering:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH * 2,
    )
    return BertForQuestionAnswering(config).eval()


def test_span_logits_keep_window_order_and_equal_the_untrimmed_model(tokenizer):
    features = prepare_features(qa_examples(), tokenizer, max_length=MAX_LENGTH, doc_stride=8, max_query_length=12, for_training=False)
    assert len(features) > len(qa_examples())  # the long context needs several windows
    model = tiny_qa_model(tokenizer.get_vocab_size())
    start_logits, end_logits, loss = predict_span_logits(model, features, batch_size=2, device=torch.device("cpu"))
    with torch.no_grad():
        full = model(
            torch.from_numpy(features.input_ids),
            torch.from_numpy(features.token_type_ids),
            torch.from_numpy(features.attention_mask),
            torch.from_numpy(features.start_positions),
            torch.from_numpy(features.end_positions),
        )
    real = features.attention_mask.astype(bool)
    assert np.allclose(start_logits[real], full.start_logits.numpy()[real], atol=1e-5)
    assert np.allclose(end_logits[real], full.end_logits.numpy()[real], atol=1e-5)
    assert np.all(start_logits[~real] <= PADDING_LOGIT) and np.all(end_logits[~real] <= PADDING_LOGIT)
    assert loss == pytest.approx(float(full.loss), rel=1e-4)  # both average over windows
    assert model.training is False


class OracleModel(nn.Module):
    """Puts the largest logits on the gold span of each window (by its input ids), [CLS] when absent."""

    def __init__(self, features: QAFeatures):
        super().__init__()
        self.targets = {
            tuple(row[: int(mask.sum())].tolist()): (int(start), int(end))
            for row, mask, start, end in zip(features.input_ids, features.attention_mask, features.start_positions, features.end_positions)
        }

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None, end_positions=None) -> SpanOutput:
        start_logits = torch.zeros(input_ids.shape)
        end_logits = torch.zeros(input_ids.shape)
        for row, (ids, mask) in enumerate(zip(input_ids, attention_mask)):
            start, end = self.targets[tuple(ids[: int(mask.sum())].tolist())]
            start_logits[row, start] = end_logits[row, end] = 10.0
        loss = (nn.functional.cross_entropy(start_logits, start_positions) + nn.functional.cross_entropy(end_logits, end_positions)) / 2
        return SpanOutput(start_logits, end_logits, loss)


def test_evaluate_scores_decoded_answers_with_the_official_metric(tokenizer):
    examples = qa_examples()
    features = prepare_features(examples, tokenizer, max_length=MAX_LENGTH, doc_stride=8, max_query_length=12, for_training=False)
    train_batches = QABatches(features, batch_size=4, seed=0)
    task = QATask(
        train_batches, examples, features, "korquad", DecodingConfig(n_best_size=5), eval_batch_size=3, device=torch.device("cpu")
    )
    metrics = task.evaluate(OracleModel(features))
    assert metrics["exact_match"] == 100.0 and metrics["f1"] == 100.0 and np.isfinite(metrics["loss"])
    assert set(metrics) == {"exact_match", "f1", "loss"}  # question counts stay out of the logged metrics
    evaluation = task.last_evaluation
    assert evaluation.predictions == {"q0": "red", "q1": "blue", "q2": "빨간색", "long": "red"}
    assert evaluation.scores["total"] == 4 and all(len(entries) <= 5 for entries in evaluation.n_best.values())

    loss, stats = task.loss(tiny_qa_model(tokenizer.get_vocab_size()), train_batches.batch_at(DataPosition(0, 0), 0, 1)[0])
    assert loss.requires_grad and stats["loss"] == pytest.approx(float(loss.detach()))
    assert QATask(train_batches, None, None, "squad", DecodingConfig(), 3, torch.device("cpu")).evaluate(OracleModel(features)) == {}


def test_window_lengths_count_real_tokens(tokenizer):
    features = prepare_features(qa_examples()[:1], tokenizer, max_length=MAX_LENGTH, doc_stride=8, max_query_length=12)
    encoded = tokenizer.encode(qa_examples()[0].question, qa_examples()[0].context)
    assert len(features) == 1 and window_lengths(features).tolist() == [len(encoded.ids)]


def test_klue_evaluation_reports_rouge_w_and_scores_unanswerable_questions(tokenizer):
    examples = qa_examples() + [QAExample("impossible", "What color is the sky?", CONTEXTS[0], [], is_impossible=True)]
    features = prepare_features(examples, tokenizer, max_length=MAX_LENGTH, doc_stride=8, max_query_length=12, for_training=False)
    decoding = DecodingConfig(n_best_size=5, version_2=True)  # KLUE-MRC runs may answer "" (NO_ANSWER_FLAVORS)
    task = QATask(QABatches(features, batch_size=4, seed=0), examples, features, "klue", decoding, 3, torch.device("cpu"))
    metrics = task.evaluate(OracleModel(features))
    assert metrics["exact_match"] == metrics["rouge_w"] == metrics["NoAns_rouge_w"] == metrics["HasAns_rouge_w"] == 100.0
    assert task.last_evaluation.predictions["impossible"] == ""
    assert task.last_evaluation.scores["NoAns_total"] == 1 and "NoAns_total" not in metrics
    assert set(metrics) <= set(QATask.metric_directions)  # every logged KLUE score can pick the checkpoint


def klue_mrc(articles: int, paragraphs: int = 1) -> dict:
    """KLUE-MRC's layout: no "id" but a "guid" and a question_type per question, news metadata per article."""
    data = []
    for number in range(articles):
        entries = []
        for paragraph in range(paragraphs):
            context = f"{number}번 기사 {paragraph}문단: 오늘 정부가 발표했다."
            qas = [
                {
                    "question": f"누가 발표했나 {number}-{paragraph}-{q}?",
                    "answers": [{"text": "정부", "answer_start": context.index("정부")}],
                    "question_type": 1,
                    "is_impossible": False,
                    "guid": f"klue-mrc-v1_train_{number:03d}{paragraph:02d}{q}",
                }
                for q in range(2)
            ]
            entries.append({"context": context, "qas": qas})
        data.append({"title": f"기사 {number}", "paragraphs": entries, "news_category": "경제", "source": "hankyung"})
    return {"version": "v1.1", "data": data}


def test_split_dev_writes_parts_still_read_and_scored_as_klue_mrc(tmp_path):
    train = tmp_path / "klue-mrc-v1.1_train.json"
    train.write_text(json.dumps(klue_mrc(10), ensure_ascii=False), encoding="utf-8")
    split = get_task("qa").split_dev(str(train), QADataConfig(), 0.2, 0, tmp_path / "dev-split")
    assert split.grouped_by == "article" and (split.num_train, split.num_dev) == (16, 4) and not split.stratified
    for path, count in ((split.train, split.num_train), (split.dev, split.num_dev)):
        examples, flavor, _ = load_squad_json(path)
        # The guid/question_type layout survives the split, so each part is KLUE and gets KLUE's ROUGE-W.
        assert flavor == "klue" and len(examples) == count
        scores = evaluate_predictions(examples, {example.id: example.answers[0]["text"] for example in examples}, flavor)
        assert scores["rouge_w"] == 100.0
    titles = [
        {article["title"] for article in json.loads(Path(path).read_text(encoding="utf-8"))["data"]} for path in (split.train, split.dev)
    ]
    assert not titles[0] & titles[1]


def test_split_dev_of_one_article_splits_by_paragraph_and_says_so(tmp_path, capsys):
    train = tmp_path / "one-article.json"
    train.write_text(json.dumps(klue_mrc(1, paragraphs=10), ensure_ascii=False), encoding="utf-8")
    split = get_task("qa").split_dev(str(train), QADataConfig(), 0.2, 0, tmp_path / "dev-split")
    assert split.grouped_by == "paragraph" and (split.num_train, split.num_dev) == (16, 4)
    assert f"{train}: the dev split holds out whole paragraphs, not articles" in capsys.readouterr().err
    assert load_squad_json(split.dev)[1] == "klue"


def test_split_dev_refuses_a_file_that_is_not_squad_in_one_line(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"version": "1.1", "data": [{"title": "t"}]}), encoding="utf-8")
    with pytest.raises(PrefineError, match="no 'paragraphs' key"):
        get_task("qa").split_dev(str(broken), QADataConfig(), 0.2, 0, tmp_path / "dev-split")
