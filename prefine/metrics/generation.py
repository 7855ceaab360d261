"""Scores for generated text: ROUGE-1/2/L F, BLEU (sacreBLEU) and exact match, for every script.

ROUGE follows Lin (2004) as the `rouge-score` package computes it (per-example precision, recall
and F1 of overlapping n-grams, or of the longest common subsequence for ROUGE-L; the corpus score
is the mean F1 x 100), with one deliberate difference: the tokenisation. rouge-score's default
tokenizer lowercases and then replaces every character outside [a-z0-9] with a space, so a Korean
summary scores 0 against a perfect reference. Here a token is a run of letters and digits of any
script (NFKC-normalised, case-folded, punctuation dropped); Chinese characters and Japanese kana,
which are written without spaces, count one token each. On ASCII text this gives exactly
rouge-score's tokens (without stemming).

BLEU is sacreBLEU's corpus BLEU with its `intl` tokenizer (Unicode-aware punctuation splitting,
fit for any script that separates words with spaces); the signature is reported with the score.
sacreBLEU is an optional dependency (`pip install prefine[generation]`).

Exact match compares the metric tokens, so case, spacing and punctuation differences that a
WordPiece round trip introduces ("hello , world" vs "Hello, world!") do not count as errors.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from prefine.errors import PrefineError

# Scripts written without spaces between words: each character is a token of its own.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_TOKEN = re.compile(rf"[{_UNSPACED}]|[^\W_{_UNSPACED}]+")
BLEU_TOKENIZER = "intl"


def metric_tokens(text: str) -> list[str]:
    """The tokens ROUGE and exact match compare: letter/digit runs of any script, case-folded."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[index : index + n]) for index in range(len(tokens) - n + 1))


def _f1(overlap: float, predicted: int, reference: int) -> float:
    precision = overlap / predicted if predicted else 0.0
    recall = overlap / reference if reference else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def rouge_n(prediction: Sequence[str], reference: Sequence[str], n: int) -> float:
    """ROUGE-N F1 of two token lists."""
    predicted, expected = _ngrams(prediction, n), _ngrams(reference, n)
    overlap = sum((predicted & expected).values())
    return _f1(overlap, sum(predicted.values()), sum(expected.values()))


def longest_common_subsequence(first: Sequence[str], second: Sequence[str]) -> int:
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for index, other in enumerate(second):
            current.append(previous[index] + 1 if token == other else max(previous[index + 1], current[index]))
        previous = current
    return previous[-1]


def rouge_l(prediction: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 (sentence-level longest common subsequence) of two token lists."""
    return _f1(longest_common_subsequence(prediction, reference), len(prediction), len(reference))


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise PrefineError("BLEU needs the sacrebleu package; pip install 'prefine[generation]'") from None
    return sacrebleu


def require_bleu() -> None:
    """Fail before any work when BLEU cannot be computed."""
    _sacrebleu()


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """sacreBLEU corpus BLEU (0-100) and its signature."""
    sacrebleu = _sacrebleu()
    metric = sacrebleu.metrics.BLEU(tokenize=BLEU_TOKENIZER)
    score = metric.corpus_score(list(predictions), [list(references)])
    return float(score.score), str(metric.get_signature())


def generation_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | str]:
    """rouge1, rouge2, rougeL (mean F1 x 100), bleu, exact_match (% of examples) and the BLEU signature."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise PrefineError("there are no examples to score; pass data with at least one (source, target) pair")
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "exact_match": 0.0}
    for prediction, reference in zip(predictions, references):
        predicted, expected = metric_tokens(prediction), metric_tokens(reference)
        totals["rouge1"] += rouge_n(predicted, expected, 1)
        totals["rouge2"] += rouge_n(predicted, expected, 2)
        totals["rougeL"] += rouge_l(predicted, expected)
        totals["exact_match"] += float(predicted == expected)
    scores: dict[str, float | str] = {name: 100.0 * value / len(predictions) for name, value in totals.items()}
    scores["bleu"], scores["bleu_signature"] = corpus_bleu(predictions, references)
    return scores


def format_generation_table(scores: dict[str, float | str], count: int) -> str:
    return (
        f"{count} examples: ROUGE-1 {scores['rouge1']:.2f}  ROUGE-2 {scores['rouge2']:.2f}  ROUGE-L {scores['rougeL']:.2f}  "
        f"BLEU {scores['bleu']:.2f}  exact match {scores['exact_match']:.2f}%"
        + (f"  loss {scores['loss']:.4f}" if "loss" in scores else "")
        + f"\n  (F1 x 100 on letter/digit tokens of any script; BLEU {scores['bleu_signature']})"
    )
