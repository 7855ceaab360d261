"""KLUE-MRC's official answer scores: exact match and character "ROUGE-W", as KLUE's baseline computes them.

KLUE-MRC (Park et al. 2021) reports exact match and a character-level ROUGE-W. The numbers on
its leaderboard come from the KLUE baseline's `klue_baseline/metrics/utils.py`, and that code
differs from both the textbook ROUGE-W and the KorQuAD script in ways that move scores, so it
is reproduced here exactly:

- **Normalisation** (`normalize_answer_for_klue_mrc`): lowercase, replace matches of the pattern
  `['"《》<>〈〉]()‘’` by a space, drop `string.punctuation`, collapse whitespace. The pattern
  is a character class followed by the literal text `()‘’`, so it only fires on that rare
  five-character sequence: in practice the brackets 《》〈〉 and the quotes ‘’ are kept (unlike
  KorQuAD, which removes them) and only ASCII punctuation is dropped.
- **"ROUGE-W"** (`rouge_w_score_for_klue_mrc`): not Lin's weighted LCS with weight 1.2, but the
  F1 (beta 1) of the *longest common substring* of the two normalised strings, found with
  `difflib.SequenceMatcher(None, prediction, gold).find_longest_match` (junk heuristic and all:
  the same call is made here). Precision is that length over the prediction's length, recall
  over the gold answer's. An empty gold answer (an unanswerable question) scores 1 only for an
  empty prediction.
- **Per question** the best score over the gold answers counts; a question without gold answers
  (KLUE's unanswerable type 3) is scored against the empty answer. The corpus score is the mean
  over questions, times 100.

prefine adds one number KLUE does not report, `f1`: KorQuAD's character-overlap F1 (shared
characters of the normalised answers with their spaces removed) on KLUE's normalisation, with
SQuAD v2.0's rule that an empty side scores 1 only when both are empty. It is there so that a
KLUE-MRC run can be compared with KorQuAD runs on the familiar scale; the KLUE numbers are
`exact_match` and `rouge_w`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from difflib import SequenceMatcher

# KLUE's pattern verbatim: a class of quotes and brackets followed by the literal "()‘’" (see above).
_KLUE_PATTERN = re.compile(r"[\'\"《》<>〈〉]\(\)\‘\’")
_PUNCTUATION = set(string.punctuation)


def normalize_klue_answer(text: str) -> str:
    """The answer as KLUE-MRC's scorer compares it (lowercased, ASCII punctuation dropped, whitespace collapsed)."""
    text = _KLUE_PATTERN.sub(" ", text.lower())
    text = "".join(character for character in text if character not in _PUNCTUATION)
    return " ".join(text.split())


def klue_rouge_w(prediction: str, gold: str) -> float:
    """KLUE's character "ROUGE-W" of two *normalised* answers: F1 of their longest common substring."""
    if gold == "":
        return float(prediction == gold)
    longest = SequenceMatcher(None, prediction, gold).find_longest_match(0, len(prediction), 0, len(gold)).size
    precision = longest / len(prediction) if prediction else 0.0
    recall = longest / len(gold)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def klue_character_f1(prediction: str, gold: str) -> float:
    """KorQuAD-style character-overlap F1 of two normalised answers (prefine's addition; see the module docstring)."""
    prediction_characters = list(prediction.replace(" ", ""))
    gold_characters = list(gold.replace(" ", ""))
    if not prediction_characters or not gold_characters:
        return float(prediction_characters == gold_characters)
    shared = sum((Counter(prediction_characters) & Counter(gold_characters)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(prediction_characters), shared / len(gold_characters)
    return 2 * precision * recall / (precision + recall)


def score_klue_question(prediction: str, gold_texts: list[str]) -> tuple[float, float, float]:
    """(exact match, ROUGE-W, character F1) of one question: the best over its gold answers ("" when it has none)."""
    predicted = normalize_klue_answer(prediction)
    golds = [normalize_klue_answer(text) for text in gold_texts] or [""]
    exact = max(float(predicted == gold) for gold in golds)
    rouge = max(klue_rouge_w(predicted, gold) for gold in golds)
    f1 = max(klue_character_f1(predicted, gold) for gold in golds)
    return exact, rouge, f1
