"""ROUGE, BLEU and exact match on hand-computed English and Korean cases, and rouge-score as the English reference."""

from __future__ import annotations

import random

import pytest

from prefine.metrics.generation import generation_metrics, longest_common_subsequence, metric_tokens, rouge_l, rouge_n


def test_tokens_keep_every_script_and_split_unspaced_ones_per_character():
    assert metric_tokens("Hello, World! It's 2024.") == ["hello", "world", "it", "s", "2024"]
    assert metric_tokens("오늘 서울의 날씨는 맑음.") == ["오늘", "서울의", "날씨는", "맑음"]
    assert metric_tokens("東京は晴れ") == ["東", "京", "は", "晴", "れ"]
    assert metric_tokens("Ｆｕｌｌｗｉｄｔｈ ＡＢＣ") == ["fullwidth", "abc"]  # NFKC


def test_english_hand_computed():
    prediction, reference = metric_tokens("the cat sat on the mat"), metric_tokens("the cat sat on a mat")
    # unigrams: the, cat, sat, on, mat match (5 of 6 on each side); bigrams: the-cat, cat-sat, sat-on (3 of 5)
    assert rouge_n(prediction, reference, 1) == pytest.approx(5 / 6)
    assert rouge_n(prediction, reference, 2) == pytest.approx(3 / 5)
    assert longest_common_subsequence(prediction, reference) == 5
    assert rouge_l(prediction, reference) == pytest.approx(5 / 6)
    # precision 2/3, recall 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert rouge_n(metric_tokens("police killed gunman"), metric_tokens("police kill the gunman"), 1) == pytest.approx(4 / 7)


def test_korean_hand_computed():
    prediction, reference = metric_tokens("오늘 서울 날씨는 맑음"), metric_tokens("오늘 서울 날씨는 흐림")
    assert rouge_n(prediction, reference, 1) == pytest.approx(3 / 4)
    assert rouge_n(prediction, reference, 2) == pytest.approx(2 / 3)
    assert rouge_l(prediction, reference) == pytest.approx(3 / 4)
    # Word order matters to ROUGE-L only: LCS of (a b c d) and (c d a b) is 2.
    assert rouge_l(metric_tokens("가 나 다 라"), metric_tokens("다 라 가 나")) == pytest.approx(2 / 4)


def test_corpus_scores_bleu_and_exact_match_hand_computed():
    pytest.importorskip("sacrebleu")
    english = generation_metrics(["the cat sat on the mat"], ["the cat sat on a mat"])
    # BLEU: n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths -> (5/6 * 3/5 * 1/2 * 1/3) ** (1/4)
    assert english["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 2 * 1 / 3) ** 0.25, abs=0.01)
    korean = generation_metrics(["오늘 서울 날씨는 맑고 바람이 분다"], ["오늘 서울 날씨는 흐리고 바람이 분다"])
    # precisions 5/6, 3/5, 1/4 and no 4-gram match: sacreBLEU's exp smoothing counts it as 1/2 of 3 -> 1/6
    assert korean["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25, abs=0.01)
    assert korean["rouge1"] == pytest.approx(100 * 5 / 6)
    both = generation_metrics(["Hello, world!", "오늘 맑음", "wrong"], ["hello world", "오늘 맑음.", "right"])
    assert both["exact_match"] == pytest.approx(200 / 3)
    assert both["rougeL"] == pytest.approx(200 / 3)


def test_english_matches_rouge_score():
    rouge_score = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rng = random.Random(0)
    words = "the a cat dog sat ran on over mat hill quickly slowly".split()
    for _ in range(50):
        prediction = " ".join(rng.choices(words, k=rng.randint(1, 12)))
        reference = " ".join(rng.choices(words, k=rng.randint(1, 12)))
        expected = scorer.score(reference, prediction)
        ours = metric_tokens(prediction), metric_tokens(reference)
        assert rouge_n(*ours, 1) == pytest.approx(expected["rouge1"].fmeasure)
        assert rouge_n(*ours, 2) == pytest.approx(expected["rouge2"].fmeasure)
        assert rouge_l(*ours) == pytest.approx(expected["rougeL"].fmeasure)


def test_rouge_score_default_tokenizer_scores_korean_zero_and_ours_does_not():
    rouge_score = pytest.importorskip("rouge_score.rouge_scorer")
    identical = "오늘 서울 날씨는 맑음"
    assert rouge_score.RougeScorer(["rouge1"]).score(identical, identical)["rouge1"].fmeasure == 0.0  # the trap
    assert rouge_n(metric_tokens(identical), metric_tokens(identical), 1) == 1.0
