"""Extractive-QA scores that reproduce the official SQuAD v1.1, SQuAD v2.0 and KorQuAD 1.0 scripts.

Leaderboard numbers are only comparable when they come from the dataset's own evaluation
script, and the three scripts disagree in small ways that move scores by points:

- SQuAD v1.1 (`evaluate-v1.1.py`): lowercase, drop `string.punctuation`, replace the whole
  words a/an/the by a space, collapse whitespace; EM compares the normalised strings; F1 counts
  shared *whitespace tokens*; a pair with no shared token scores 0 (even two empty strings).
- SQuAD v2.0 (`evaluate-v2.0.py`): the same normalisation; gold answers that normalise to ""
  are dropped and a question left without any is scored against [""], so an empty prediction
  on an unanswerable question scores 1; F1 is int(both sides equal) when either side has no
  token; scores are also broken down into HasAns / NoAns.
- KorQuAD 1.0 (`evaluate-v1.0.py`): first replaces ' " 《 》 < > 〈 〉 ( ) ‘ ’ by spaces, then
  lowercases, drops `string.punctuation` and collapses whitespace (no article removal). EM
  compares these normalised strings, spaces included (so "세종 대왕" != "세종대왕"); F1 counts
  shared *characters* of the normalised answer with its spaces removed, because Korean words
  carry particles ("세종대왕은") that token F1 would score as a complete miss. Note the script
  does NOT remove the double curly quotes “ ” (they are not in `string.punctuation` either);
  we keep that quirk so our numbers equal the official ones.

Every script averages per-question scores, multiplies by 100, and scores an unanswered
question 0 in the denominator (v2.0's script would drop it instead; we keep the v1.1 rule
everywhere so a model cannot improve its score by skipping questions, and report the count).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from prefine.errors import PrefineError

Flavor = Literal["squad", "squad_v2", "korquad"]
FLAVORS: tuple[str, ...] = ("squad", "squad_v2", "korquad")

_PUNCTUATION = set(string.punctuation)
_ENGLISH_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
# The exact characters KorQuAD 1.0's `remove_` replaces by a space, in its order; “ ” are absent there.
_KORQUAD_SYMBOLS = re.compile("['\"《》<>〈〉()‘’]")


def _remove_punctuation(text: str) -> str:
    return "".join(ch for ch in text if ch not in _PUNCTUATION)


def _squad_normalize(text: str) -> str:
    """SQuAD v1.1/v2.0: lower -> drop punctuation -> articles to spaces -> collapse whitespace."""
    text = _remove_punctuation(text.lower())
    text = _ENGLISH_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _korquad_normalize(text: str) -> str:
    """KorQuAD 1.0: symbols to spaces -> lower -> drop punctuation -> collapse whitespace."""
    text = _KORQUAD_SYMBOLS.sub(" ", text)
    text = _remove_punctuation(text.lower())
    return " ".join(text.split())


def _check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise PrefineError(f"Unknown QA evaluation flavor {flavor!r}; use one of {', '.join(FLAVORS)}.")


def normalize_answer(text: str, flavor: Flavor = "squad") -> str:
    """The answer string as the official script of `flavor` compares it."""
    _check_flavor(flavor)
    return _korquad_normalize(text) if flavor == "korquad" else _squad_normalize(text)


def exact_match_score(prediction: str, ground_truth: str, flavor: Flavor = "squad") -> float:
    """1.0 when the normalised strings are equal, else 0.0 (all three scripts agree)."""
    return float(normalize_answer(prediction, flavor) == normalize_answer(ground_truth, flavor))


def _overlap_f1(prediction_units: list[str], truth_units: list[str]) -> float:
    shared = sum((Counter(prediction_units) & Counter(truth_units)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(prediction_units)
    recall = shared / len(truth_units)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, ground_truth: str, flavor: Flavor = "squad") -> float:
    """Overlap F1 of one prediction against one gold answer, as the official script of `flavor`."""
    if flavor == "korquad":
        # Characters of the space-joined tokens, i.e. the normalised string without its spaces.
        prediction_chars = list(normalize_answer(prediction, flavor).replace(" ", ""))
        truth_chars = list(normalize_answer(ground_truth, flavor).replace(" ", ""))
        return _overlap_f1(prediction_chars, truth_chars)
    prediction_tokens = normalize_answer(prediction, flavor).split()
    truth_tokens = normalize_answer(ground_truth, flavor).split()
    if flavor == "squad_v2" and (not prediction_tokens or not truth_tokens):
        # v2.0: a no-answer on either side is right only if both are no-answers.
        return float(prediction_tokens == truth_tokens)
    return _overlap_f1(prediction_tokens, truth_tokens)


def detect_flavor(dataset_json: dict) -> Flavor:
    """Which official script a SQuAD-format file belongs to, from its "version" and its questions.

    "KorQuAD_v1.0_*" -> korquad; "v2.0" -> squad_v2; otherwise squad_v2 if any question is
    marked is_impossible, else squad (v1.1 and unknown versions).
    """
    version = str(dataset_json.get("version", ""))
    if version.lower().startswith("korquad"):
        if not re.match(r"korquad_?v?1", version.lower()):
            raise PrefineError(
                f"Dataset version {version!r} is not supported; prefine reads KorQuAD 1.0 "
                "(KorQuAD 2.0's HTML documents use a different format)."
            )
        return "korquad"
    if version.lstrip("v").startswith("2"):
        return "squad_v2"
    for article in dataset_json.get("data") or []:
        for paragraph in article.get("paragraphs") or []:
            if any(qa.get("is_impossible") for qa in paragraph.get("qas") or []):
                return "squad_v2"
    return "squad"


def _gold_questions(examples_or_dataset: Any) -> Iterable[tuple[str, list[str]]]:
    """(question id, gold answer texts) from QAExample-like objects, a SQuAD JSON dict or its "data" list."""
    if isinstance(examples_or_dataset, dict):
        if "data" not in examples_or_dataset:
            raise PrefineError("The dataset JSON has no 'data' key; pass a SQuAD-format file or a list of examples.")
        examples_or_dataset = examples_or_dataset["data"]
    for item in examples_or_dataset:
        if isinstance(item, dict):  # an article of the official JSON
            for paragraph in item["paragraphs"]:
                for qa in paragraph["qas"]:
                    yield qa["id"], [answer["text"] for answer in qa.get("answers", [])]
        else:  # a QAExample (duck-typed so this module does not depend on prefine.tasks)
            answers = [] if getattr(item, "is_impossible", False) else item.answers
            yield item.id, [answer["text"] for answer in answers]


def _score_question(prediction: str, gold_texts: list[str], flavor: Flavor) -> tuple[float, float]:
    if flavor == "squad_v2":
        # v2.0 drops gold answers that normalise to nothing; none left means "unanswerable".
        gold_texts = [text for text in gold_texts if normalize_answer(text, flavor)]
    gold_texts = gold_texts or [""]
    exact = max(exact_match_score(prediction, gold, flavor) for gold in gold_texts)
    f1 = max(f1_score(prediction, gold, flavor) for gold in gold_texts)
    return exact, f1


def evaluate_predictions(examples_or_dataset: Any, predictions: dict[str, str], flavor: Flavor) -> dict:
    """Official-script EM and F1 (in percent) of `predictions` {question id: answer text}.

    Returns {"exact_match", "f1", "total", "missing_predictions"}; for squad_v2 also
    "HasAns_exact_match", "HasAns_f1", "HasAns_total" and the same for "NoAns" (a group is
    left out when it has no question, as the official script does).
    """
    _check_flavor(flavor)
    totals = {True: [0.0, 0.0, 0], False: [0.0, 0.0, 0]}  # has_answer -> [exact, f1, count]
    missing = 0
    for question_id, gold_texts in _gold_questions(examples_or_dataset):
        # Like the v2.0 script, the breakdown groups by whether the file lists any answer at all.
        has_answer = bool(gold_texts) or flavor != "squad_v2"
        group = totals[has_answer]
        group[2] += 1
        if question_id not in predictions:
            missing += 1
            continue
        exact, f1 = _score_question(predictions[question_id], gold_texts, flavor)
        group[0] += exact
        group[1] += f1

    total = totals[True][2] + totals[False][2]
    if total == 0:
        raise PrefineError("The evaluation set has no questions; check the dataset file.")
    result: dict = {
        "exact_match": 100.0 * (totals[True][0] + totals[False][0]) / total,
        "f1": 100.0 * (totals[True][1] + totals[False][1]) / total,
        "total": total,
        "missing_predictions": missing,
    }
    if flavor == "squad_v2":
        for prefix, has_answer in (("HasAns", True), ("NoAns", False)):
            exact_sum, f1_sum, count = totals[has_answer]
            if count:
                result[f"{prefix}_exact_match"] = 100.0 * exact_sum / count
                result[f"{prefix}_f1"] = 100.0 * f1_sum / count
                result[f"{prefix}_total"] = count
    return result
