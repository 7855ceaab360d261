"""Entity metrics equal seqeval's (lenient and strict) on hand-picked and generated tag sequences, ill-formed ones included."""

from __future__ import annotations

import random
import warnings

import pytest

from prefine.metrics.entities import entity_scores, lenient_chunks, strict_chunks, tag_macro_f1, token_accuracy

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")
SCHEMES = {"IOB1": seqeval_scheme.IOB1, "IOB2": seqeval_scheme.IOB2, "IOBES": seqeval_scheme.IOBES, "BILOU": seqeval_scheme.BILOU}
TOLERANCE = 1e-9


def seqeval_scores(gold, predicted, scheme=None) -> dict[str, float]:
    strict = {"mode": "strict", "scheme": SCHEMES[scheme]} if scheme else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined-metric and "not a NE tag" warnings on ill-formed cases
        precision = seqeval_metrics.precision_score(gold, predicted, **strict)
        recall = seqeval_metrics.recall_score(gold, predicted, **strict)
        f1 = seqeval_metrics.f1_score(gold, predicted, **strict)
        macro = seqeval_metrics.f1_score(gold, predicted, average="macro", **strict)
        per_type = seqeval_metrics.classification_report(gold, predicted, output_dict=True, **strict)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "macro_f1": float(macro), "per_type": per_type}


def assert_equal_to_seqeval(gold, predicted, scheme=None) -> None:
    ours = entity_scores(gold, predicted, scheme)
    reference = seqeval_scores(gold, predicted, scheme)
    assert abs(ours.precision - reference["precision"]) < TOLERANCE, (gold, predicted)
    assert abs(ours.recall - reference["recall"]) < TOLERANCE, (gold, predicted)
    assert abs(ours.f1 - reference["f1"]) < TOLERANCE, (gold, predicted)
    if ours.per_type:  # with no entity at all seqeval's macro mean is nan; ours is 0
        assert abs(ours.macro_f1 - reference["macro_f1"]) < TOLERANCE, (gold, predicted)
    for kind, counts in ours.per_type.items():
        row = reference["per_type"][kind]
        assert counts.gold == row["support"]
        assert abs(counts.f1 - row["f1-score"]) < TOLERANCE


def random_tags(rng: random.Random, length: int, positions: str, types=("PER", "LOC", "ORG"), odd: bool = False) -> list[str]:
    tags = []
    for _ in range(length):
        position = rng.choice(positions)
        if position == "O":
            tags.append("O")
        elif odd and rng.random() < 0.1:
            tags.append(rng.choice([position, f"{position}-", f"{position}--{rng.choice(types)}", f"{position}{rng.choice(types)}"]))
        else:
            tags.append(f"{position}-{rng.choice(types)}")
    return tags


def test_the_known_example_of_seqeval():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    predicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = entity_scores(gold, predicted)
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    assert token_accuracy(gold, predicted) == 0.8


def test_lenient_reads_an_entity_without_its_b_and_strict_does_not():
    assert lenient_chunks(["I-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert strict_chunks(["I-PER", "I-PER", "O", "B-LOC"], "IOB2") == [("LOC", 3, 4)]
    assert strict_chunks(["B-PER", "I-PER", "O"], "IOBES") == []  # never closed by E-PER
    assert strict_chunks(["B-PER", "E-PER", "S-LOC"], "IOBES") == [("PER", 0, 2), ("LOC", 2, 3)]
    with pytest.raises(ValueError):
        strict_chunks(["E-PER"], "IOB2")


@pytest.mark.parametrize("positions", ["BIO", "BIOES", "IO", "BIOESLU.X"])
def test_lenient_scores_equal_seqeval_on_generated_sequences(positions):
    rng = random.Random(len(positions))
    for _ in range(300):
        sentences = rng.randint(1, 4)
        lengths = [rng.randint(0, 9) for _ in range(sentences)]
        gold = [random_tags(rng, length, positions, odd=True) for length in lengths]
        predicted = [random_tags(rng, length, positions, odd=True) for length in lengths]
        assert_equal_to_seqeval(gold, predicted)
        assert_equal_to_seqeval(gold, gold)


@pytest.mark.parametrize("scheme,positions", [("IOB2", "BIO"), ("IOB1", "BIO"), ("IOBES", "BIOES"), ("BILOU", "BILOU")])
def test_strict_scores_equal_seqeval_on_generated_sequences(scheme, positions):
    rng = random.Random(7)
    for _ in range(300):
        lengths = [rng.randint(0, 9) for _ in range(rng.randint(1, 4))]
        gold = [random_tags(rng, length, positions) for length in lengths]
        predicted = [random_tags(rng, length, positions) for length in lengths]
        assert_equal_to_seqeval(gold, predicted, scheme)


def test_tag_macro_f1_equals_scikit_learn_with_zero_division_one():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    labels = ["B-PS", "I-PS", "B-LC", "I-LC", "B-DT", "I-DT", "O"]
    for _ in range(50):
        lengths = [rng.randint(1, 12) for _ in range(3)]
        gold = [[rng.choice(labels[:4] + ["O"]) for _ in range(length)] for length in lengths]
        predicted = [[rng.choice(labels) for _ in range(length)] for length in lengths]
        flat_gold = [tag for tags in gold for tag in tags]
        flat_predicted = [tag for tags in predicted for tag in tags]
        reference = sklearn_metrics.f1_score(flat_gold, flat_predicted, labels=labels, average="macro", zero_division=1)
        assert abs(tag_macro_f1(gold, predicted, labels) - reference) < TOLERANCE
