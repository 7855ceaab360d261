"""Extractive-QA scores that reproduce the official SQuAD v1.1, SQuAD v2.0, KorQuAD 1.0 and KLUE-MRC scorers.

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

KLUE-MRC (flavor `klue`) is scored by KLUE's own rules (`prefine.metrics.klue_mrc`): exact
match and character "ROUGE-W" (`rouge_w`) on KLUE's normalisation, unanswerable questions
included (with the HasAns / NoAns breakdown, as for v2.0).

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
from prefine.metrics.klue_mrc import normalize_klue_answer, score_klue_question

Flavor = Literal["squad", "squad_v2", "korquad", "klue"]
FLAVORS: tuple[str, ...] = ("squad", "squad_v2", "korquad", "klue")
# Flavors whose files hold unanswerable questions (is_impossible) that the model may answer with "".
NO_ANSWER_FLAVORS: tuple[str, ...] = ("squad_v2", "klue")

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
    if flavor == "klue":
        return normalize_klue_answer(text)
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
    if flavor == "klue":
        return score_klue_question(prediction, [ground_truth])[2]
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

    "KorQuAD_v1.0_*" -> korquad; "klue*" or questions identified by "guid" with a
    "question_type" (KLUE-MRC's layout) -> klue; "v2.0" -> squad_v2; otherwise squad_v2 if any
    question is marked is_impossible, else squad (v1.1 and unknown versions).
    """
    version = str(dataset_json.get("version", ""))
    if version.lower().startswith("klue") or _has_klue_questions(dataset_json):
        return "klue"
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


def _has_klue_questions(dataset_json: dict) -> bool:
    for article in dataset_json.get("data") or []:
        for paragraph in (article.get("paragraphs") or []) if isinstance(article, dict) else []:
            for qa in (paragraph.get("qas") or []) if isinstance(paragraph, dict) else []:
                return isinstance(qa, dict) and "guid" in qa and "question_type" in qa and "id" not in qa
    return False


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
                    answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                    yield qa.get("id", qa.get("guid")), [answer["text"] for answer in answers]
        else:  # a QAExample (duck-typed so this module does not depend on prefine.tasks)
            answers = [] if getattr(item, "is_impossible", False) else item.answers
            yield item.id, [answer["text"] for answer in answers]


def _score_question(prediction: str, gold_texts: list[str], flavor: Flavor) -> tuple[float, ...]:
    """(exact match, F1) of one question; for klue (exact match, F1, ROUGE-W)."""
    if flavor == "klue":
        exact, rouge, f1 = score_klue_question(prediction, gold_texts)
        return exact, f1, rouge
    if flavor == "squad_v2":
        # v2.0 drops gold answers that normalise to nothing; none left means "unanswerable".
        gold_texts = [text for text in gold_texts if normalize_answer(text, flavor)]
    gold_texts = gold_texts or [""]
    exact = max(exact_match_score(prediction, gold, flavor) for gold in gold_texts)
    f1 = max(f1_score(prediction, gold, flavor) for gold in gold_texts)
    return exact, f1


def evaluate_predictions(examples_or_dataset: Any, predictions: dict[str, str], flavor: Flavor) -> dict:
    """Official-script EM and F1 (in percent) of `predictions` {question id: answer text}.

    Returns {"exact_match", "f1", "total", "missing_predictions"}; for klue also "rouge_w"
    (KLUE-MRC's character ROUGE-W); for squad_v2 and klue also "HasAns_exact_match",
    "HasAns_f1", "HasAns_total" and the same for "NoAns" (plus "HasAns_rouge_w" / "NoAns_rouge_w"
    for klue; a group is left out when it has no question, as the official v2.0 script does).
    """
    _check_flavor(flavor)
    names = ("exact_match", "f1", "rouge_w") if flavor == "klue" else ("exact_match", "f1")
    sums = {True: [0.0] * len(names), False: [0.0] * len(names)}  # has_answer -> summed scores
    counts = {True: 0, False: 0}
    missing = 0
    for question_id, gold_texts in _gold_questions(examples_or_dataset):
        # Like the v2.0 script, the breakdown groups by whether the file lists any answer at all.
        has_answer = bool(gold_texts) or flavor not in NO_ANSWER_FLAVORS
        counts[has_answer] += 1
        if question_id not in predictions:
            missing += 1
            continue
        for index, score in enumerate(_score_question(predictions[question_id], gold_texts, flavor)):
            sums[has_answer][index] += score

    total = counts[True] + counts[False]
    if total == 0:
        raise PrefineError("The evaluation set has no questions; check the dataset file.")
    result: dict = {name: 100.0 * (sums[True][index] + sums[False][index]) / total for index, name in enumerate(names)}
    result["total"] = total
    result["missing_predictions"] = missing
    if flavor in NO_ANSWER_FLAVORS:
        for prefix, has_answer in (("HasAns", True), ("NoAns", False)):
            if counts[has_answer]:
                for index, name in enumerate(names):
                    result[f"{prefix}_{name}"] = 100.0 * sums[has_answer][index] / counts[has_answer]
                result[f"{prefix}_total"] = counts[has_answer]
    return result
