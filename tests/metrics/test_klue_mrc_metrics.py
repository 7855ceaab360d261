"""KLUE-MRC exact match and character ROUGE-W: hand-computed values of KLUE's rules, an independent longest common substring, KLUE files."""

from __future__ import annotations

import random

import pytest

from prefine.metrics.klue_mrc import klue_character_f1, klue_rouge_w, normalize_klue_answer, score_klue_question
from prefine.metrics.squad import detect_flavor, evaluate_predictions


def longest_common_substring(first: str, second: str) -> int:
    """The textbook O(n*m) dynamic programme, independent of difflib."""
    best = 0
    previous = [0] * (len(second) + 1)
    for a in first:
        current = [0] * (len(second) + 1)
        for index, b in enumerate(second, start=1):
            if a == b:
                current[index] = previous[index - 1] + 1
                best = max(best, current[index])
        previous = current
    return best


def test_klue_normalisation_drops_ascii_punctuation_only():
    assert normalize_klue_answer('  "세종대왕"은,  조선의 Fourth King! ') == "세종대왕은 조선의 fourth king"
    assert normalize_klue_answer("세종 (1418~1450)") == "세종 14181450"  # dropped, not replaced by a space
    # KLUE's bracket pattern only fires on a quote followed by the literal "()‘’": brackets and curly quotes stay.
    assert normalize_klue_answer("《훈민정음》 ‘한글’") == "《훈민정음》 ‘한글’"
    assert normalize_klue_answer("a《()‘’x") == "a x"  # the one sequence the pattern matches becomes a space


def test_rouge_w_is_the_f1_of_the_longest_common_substring():
    # "세종대왕은" against "세종대왕": substring of 4, P = 4/5, R = 1 -> F1 = 8/9.
    assert klue_rouge_w("세종대왕은", "세종대왕") == pytest.approx(8 / 9)
    # A substring, not a subsequence: "abxcd" and "abcd" share "ab" (2), not "abcd" (4): P = 2/5, R = 2/4.
    assert klue_rouge_w("abxcd", "abcd") == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert klue_rouge_w("", "세종") == 0.0 and klue_rouge_w("태조", "세종") == 0.0
    # An unanswerable question (empty gold) counts only the empty answer.
    assert klue_rouge_w("", "") == 1.0 and klue_rouge_w("세종", "") == 0.0


def test_rouge_w_equals_an_independent_longest_common_substring_on_random_strings():
    rng = random.Random(0)
    alphabet = "가나다라 ab"
    for _ in range(300):
        prediction = "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
        gold = "".join(rng.choices(alphabet, k=rng.randint(1, 12)))
        longest = longest_common_substring(prediction, gold)
        precision, recall = longest / len(prediction), longest / len(gold)
        expected = 2 * precision * recall / (precision + recall) if longest else 0.0
        assert klue_rouge_w(prediction, gold) == pytest.approx(expected)


def test_a_question_scores_its_best_gold_answer_and_unanswerables_against_the_empty_answer():
    exact, rouge, f1 = score_klue_question("세종대왕은", ["태조", "세종대왕"])
    assert (exact, rouge) == (0.0, pytest.approx(8 / 9))
    assert f1 == pytest.approx(klue_character_f1("세종대왕은", "세종대왕")) == pytest.approx(8 / 9)
    assert score_klue_question("  세종대왕!", ["세종대왕"]) == (1.0, 1.0, 1.0)
    assert score_klue_question("", []) == (1.0, 1.0, 1.0)
    assert score_klue_question("세종", []) == (0.0, 0.0, 0.0)


KLUE_MRC = {
    "version": "1.1",  # the layout, not the version string, tells a KLUE-MRC file apart
    "data": [
        {
            "title": "세종",
            "source": "wikipedia",
            "paragraphs": [
                {
                    "context": "세종대왕은 조선의 제4대 왕이다. 훈민정음을 창제하였다.",
                    "qas": [
                        {
                            "question": "조선의 제4대 왕은?",
                            "answers": [{"text": "세종대왕", "answer_start": 0}],
                            "question_type": 1,
                            "is_impossible": False,
                            "guid": "klue-mrc-v1_dev_00001",
                        },
                        {
                            "question": "세종이 창제한 것은?",
                            "answers": [{"text": "훈민정음", "answer_start": 18}, {"text": "훈민정음을", "answer_start": 18}],
                            "question_type": 2,
                            "is_impossible": False,
                            "guid": "klue-mrc-v1_dev_00002",
                        },
                        {
                            "question": "세종의 키는?",
                            "answers": [],
                            "plausible_answers": [{"text": "제4대", "answer_start": 10}],
                            "question_type": 3,
                            "is_impossible": True,
                            "guid": "klue-mrc-v1_dev_00003",
                        },
                    ],
                }
            ],
        }
    ],
}


def test_klue_files_are_detected_and_scored_with_rouge_w_and_the_unanswerable_breakdown():
    assert detect_flavor(KLUE_MRC) == "klue"
    assert detect_flavor({"version": "KLUE-MRC-v1.1", "data": []}) == "klue"
    predictions = {"klue-mrc-v1_dev_00001": "세종대왕은", "klue-mrc-v1_dev_00002": "훈민정음을", "klue-mrc-v1_dev_00003": ""}
    scores = evaluate_predictions(KLUE_MRC, predictions, "klue")
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["rouge_w"] == pytest.approx(100 * (8 / 9 + 1 + 1) / 3)
    assert scores["HasAns_rouge_w"] == pytest.approx(100 * (8 / 9 + 1) / 2) and scores["NoAns_exact_match"] == 100.0
    assert (scores["HasAns_total"], scores["NoAns_total"], scores["total"]) == (2, 1, 3)
    # Answering the unanswerable question, or missing a prediction, scores 0 for it.
    answered = evaluate_predictions(KLUE_MRC, {**predictions, "klue-mrc-v1_dev_00003": "제4대"}, "klue")
    assert answered["NoAns_rouge_w"] == 0.0
    missing = evaluate_predictions(KLUE_MRC, {"klue-mrc-v1_dev_00001": "세종대왕"}, "klue")
    assert missing["exact_match"] == pytest.approx(100 / 3) and missing["missing_predictions"] == 2
    # Other flavors report no rouge_w.
    assert "rouge_w" not in evaluate_predictions(KLUE_MRC, predictions, "korquad")
