"""SQuAD v1.1 / v2.0 / KorQuAD 1.0 scores against hand-computed values of the official scripts' rules."""

import pytest

from prefine.errors import PrefineError
from prefine.metrics.squad import (
    detect_flavor,
    evaluate_predictions,
    exact_match_score,
    f1_score,
    normalize_answer,
)
from prefine.tasks.qa_data import QAExample


def test_squad_normalization():
    assert normalize_answer("The Cat!", "squad") == "cat"
    assert normalize_answer("  an  Apple,   a day ", "squad") == "apple day"
    # Articles go only as whole words; punctuation is removed first, so "the-end" -> "theend".
    assert normalize_answer("theatre the-end", "squad") == "theatre theend"
    assert exact_match_score("The Cat!", "cat", "squad") == 1.0


def test_squad_f1_hand_computed():
    # pred "the big red dog" -> [big, red, dog]; gold "A red dog, barked" -> [red, dog, barked]
    # shared 2: P = 2/3, R = 2/3, F1 = 2/3.
    assert f1_score("the big red dog", "A red dog, barked", "squad") == pytest.approx(2 / 3)
    # pred [paris] vs gold [paris, france]: P = 1, R = 1/2 -> F1 = 2/3.
    assert f1_score("Paris", "Paris, France", "squad") == pytest.approx(2 / 3)
    # Token level: Korean with a particle shares no whitespace token.
    assert f1_score("세종대왕은", "세종대왕", "squad") == 0.0


def test_empty_strings_v1_versus_v2():
    # v1.1: no shared token -> F1 0 even for two empty answers; EM compares strings -> 1.
    assert f1_score("", "", "squad") == 0.0
    assert exact_match_score("", "", "squad") == 1.0
    # v2.0: F1 is int(equal) when either side has no token.
    assert f1_score("", "", "squad_v2") == 1.0
    assert f1_score("the", "", "squad_v2") == 1.0  # "the" normalises to nothing
    assert f1_score("cat", "", "squad_v2") == 0.0


def test_korquad_normalization():
    assert normalize_answer("《훈민정음》", "korquad") == "훈민정음"
    assert normalize_answer('‘한글’과 "세종"', "korquad") == "한글 과 세종"
    assert normalize_answer("〈용비어천가〉 (1447)", "korquad") == "용비어천가 1447"
    # No English article removal, and an apostrophe becomes a space instead of vanishing.
    assert normalize_answer("The Cat's", "korquad") == "the cat s"
    assert normalize_answer("The Cat's", "squad") == "cats"
    assert exact_match_score("《훈민정음》", "훈민정음", "korquad") == 1.0
    assert exact_match_score("《훈민정음》", "훈민정음", "squad") == 0.0  # 《》 are not ASCII punctuation


def test_korquad_keeps_curly_double_quotes_like_the_official_script():
    # The official remove_ list has ‘ ’ but not “ ”, so “한글” keeps its quotes:
    # chars [“, 한, 글, ”] vs [한, 글]: shared 2, P = 2/4, R = 1 -> F1 = 2/3, EM 0.
    assert exact_match_score("“한글”", "한글", "korquad") == 0.0
    assert f1_score("“한글”", "한글", "korquad") == pytest.approx(2 / 3)


def test_korquad_character_f1_hand_computed():
    # "세종대왕은" (5 chars) vs "세종대왕" (4 chars): 4 shared -> P = 4/5, R = 4/4,
    # F1 = 2 * (4/5) * 1 / (4/5 + 1) = 8/9.
    assert f1_score("세종대왕은", "세종대왕", "korquad") == pytest.approx(8 / 9)
    assert exact_match_score("세종대왕은", "세종대왕", "korquad") == 0.0
    # Spaces are ignored by F1 but not by EM.
    assert f1_score("세종 대왕", "세종대왕", "korquad") == pytest.approx(1.0)
    assert exact_match_score("세종 대왕", "세종대왕", "korquad") == 0.0
    # Characters are counted with multiplicity: "하하하" vs "하" -> shared 1, P 1/3, R 1 -> 1/2.
    assert f1_score("하하하", "하", "korquad") == pytest.approx(0.5)
    # Two empty answers share nothing: 0, as in the official script.
    assert f1_score("", "", "korquad") == 0.0


def _dataset(questions, version="1.1"):
    """One article, one paragraph per (id, answers[, is_impossible]) question."""
    paragraphs = []
    for question in questions:
        qa = {"id": question[0], "question": "q?", "answers": [{"text": t, "answer_start": 0} for t in question[1]]}
        if len(question) > 2:
            qa["is_impossible"] = question[2]
        paragraphs.append({"context": "context", "qas": [qa]})
    return {"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}


def test_evaluate_squad_totals_with_max_over_gold_and_missing_prediction():
    dataset = _dataset([("q1", ["Paris", "the city of Paris"]), ("q2", ["red dog"]), ("q3", ["blue"])])
    predictions = {"q1": "city of Paris", "q2": "a big red dog"}  # q3 unanswered
    # q1: EM 1 against the 2nd gold (articles removed); q2: [big, red, dog] vs [red, dog] -> EM 0,
    # F1 = 2 * (2/3) * 1 / (2/3 + 1) = 4/5; q3 missing -> 0.
    result = evaluate_predictions(dataset, predictions, "squad")
    assert result["total"] == 3
    assert result["missing_predictions"] == 1
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 4 / 5) / 3)
    assert "HasAns_total" not in result


def test_evaluate_squad_v2_breakdown():
    dataset = _dataset([("a1", ["Paris"], False), ("a2", ["red dog"], False), ("n1", [], True), ("n2", [], True)], version="v2.0")
    predictions = {"a1": "Paris", "a2": "dog", "n1": "", "n2": "something"}
    # a1: EM 1 F1 1; a2: EM 0, F1 = 2 * 1 * (1/2) / (3/2) = 2/3; n1: "" vs [""] -> 1, 1; n2: 0, 0.
    result = evaluate_predictions(dataset, predictions, "squad_v2")
    assert result["total"] == 4
    assert result["exact_match"] == pytest.approx(100 * 2 / 4)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 4)
    assert result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    assert result["HasAns_exact_match"] == pytest.approx(50.0)
    assert result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["NoAns_exact_match"] == pytest.approx(50.0)
    assert result["NoAns_f1"] == pytest.approx(50.0)


def test_evaluate_accepts_examples_and_korquad():
    examples = [
        QAExample("k1", "누가?", "세종대왕은 한글을 만들었다.", [{"text": "세종대왕", "answer_start": 0}]),
        QAExample("k2", "무엇을?", "세종대왕은 한글을 만들었다.", [{"text": "한글", "answer_start": 6}]),
    ]
    result = evaluate_predictions(examples, {"k1": "세종대왕은", "k2": "《한글》"}, "korquad")
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (8 / 9 + 1) / 2)
    with pytest.raises(PrefineError, match="flavor"):
        evaluate_predictions(examples, {}, "squad3")


def test_detect_flavor():
    assert detect_flavor({"version": "1.1", "data": []}) == "squad"
    assert detect_flavor({"version": "v2.0", "data": []}) == "squad_v2"
    assert detect_flavor({"version": "KorQuAD_v1.0_dev", "data": []}) == "korquad"
    assert detect_flavor({"data": []}) == "squad"
    assert detect_flavor(_dataset([("a", ["x"], False), ("b", [], True)], version="")) == "squad_v2"
    assert detect_flavor(_dataset([("a", ["x"], False)], version="1.1")) == "squad"
    with pytest.raises(PrefineError, match="KorQuAD 2.0"):
        detect_flavor({"version": "KorQuAD_2.0_train", "data": []})
