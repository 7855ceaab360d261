"""The scoring rules of the official SQuAD v1.1 and KorQuAD v1.0 evaluation scripts, as published.

Written out here as an independent reference (the project's own implementation is
prefine/metrics/squad.py), so tests can score the same predictions both ways. The rules:
SQuAD v1.1 lowercases, drops ASCII punctuation and the articles a/an/the, and compares word
tokens; KorQuAD v1.0 first blanks out quotes, brackets and 《》〈〉‘’, then drops ASCII punctuation
(no article rule) and compares characters of the remaining words. Both take the maximum over
the gold answers and average over every question, a missing prediction counting 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter

PUNCTUATION = set(string.punctuation)


def _squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _korquad_normalize(text: str) -> str:
    for mark in ("'", '"', "《", "》", "<", ">", "〈", "〉", "(", ")", "‘", "’"):
        text = text.replace(mark, " ")
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(text.split())


def _overlap_f1(prediction: list[str], gold: list[str]) -> float:
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_v1_scores(dataset: dict, predictions: dict[str, str]) -> dict[str, float]:
    return _scores(dataset, predictions, _squad_normalize, lambda text: _squad_normalize(text).split())


def korquad_v1_scores(dataset: dict, predictions: dict[str, str]) -> dict[str, float]:
    return _scores(
        dataset, predictions, _korquad_normalize, lambda text: [ch for token in _korquad_normalize(text).split() for ch in token]
    )


def _scores(dataset: dict, predictions: dict[str, str], normalize, units) -> dict[str, float]:
    exact = f1 = total = 0.0
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                golds = [answer["text"] for answer in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact += max(float(normalize(prediction) == normalize(gold)) for gold in golds)
                f1 += max(_overlap_f1(units(prediction), units(gold)) for gold in golds)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}
