"""KLUE-NER's official numbers from prefine's character tags: spaces left out as KLUE's scorer does, then seqeval and scikit-learn agree."""

from __future__ import annotations

import random

import pytest

from prefine.metrics.entities import entity_scores, tag_macro_f1
from prefine.tasks.token_classification import NerTrainingTask, without_spaces

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

KLUE_TAGS = ["B-PS", "I-PS", "B-LC", "I-LC", "B-OG", "I-OG", "B-DT", "I-DT", "B-TI", "I-TI", "B-QT", "I-QT", "O"]


def klue_reference(units, gold, predicted) -> tuple[float, float]:
    """KLUE's baseline scorer: every sentence's non-space characters in one sequence, then seqeval and scikit-learn.

    The baseline also scores the model's tags at [CLS] and [SEP] against an O; those are no
    characters of the data (prefine never predicts there), so for characters they are left out,
    and for entities they are only the O between sentences that keeps their entities apart.
    """
    flat_gold, flat_predicted, separated_gold, separated_predicted = [], [], [], []
    for sentence_units, gold_tags, predicted_tags in zip(units, gold, predicted):
        keep = [index for index, unit in enumerate(sentence_units) if unit != " "]
        flat_gold += [gold_tags[index] for index in keep]
        flat_predicted += [predicted_tags[index] for index in keep]
        separated_gold += ["O"] + [gold_tags[index] for index in keep] + ["O"]
        separated_predicted += ["O"] + [predicted_tags[index] for index in keep] + ["O"]
    entity = seqeval_metrics.f1_score([separated_gold], [separated_predicted], average="macro", mode="strict", scheme=seqeval_scheme.IOB2)
    character = sklearn_metrics.f1_score(flat_gold, flat_predicted, labels=KLUE_TAGS, average="macro", zero_division=1)
    return entity, character


def test_an_entity_across_a_space_counts_as_klue_counts_it():
    # "2019년 3월" is one date; the space inside it is tagged I-DT in the file, and prefine may tag it O.
    units = list("2019년 3월에 서울")
    gold = ["B-DT", "I-DT", "I-DT", "I-DT", "I-DT", "I-DT", "I-DT", "I-DT", "O", "O", "B-LC", "I-LC"]
    predicted = ["B-DT", "I-DT", "I-DT", "I-DT", "I-DT", "O", "I-DT", "I-DT", "O", "O", "B-LC", "I-LC"]
    with_spaces = entity_scores([gold], [predicted], "IOB2").macro_f1
    klue_gold, klue_predicted = without_spaces([units], [gold]), without_spaces([units], [predicted])
    assert len(klue_gold[0]) == len(units) - 2
    entity = entity_scores(klue_gold, klue_predicted, "IOB2").macro_f1
    assert entity == 1.0 and with_spaces < 1.0  # KLUE never sees the space, so the date is found
    reference_entity, reference_character = klue_reference([units], [gold], [predicted])
    assert entity == pytest.approx(reference_entity)
    assert tag_macro_f1(klue_gold, klue_predicted, KLUE_TAGS) == pytest.approx(reference_character)


def test_klue_scores_equal_seqeval_and_scikit_learn_on_generated_sentences():
    rng = random.Random(0)
    for _ in range(40):
        units, gold, predicted = [], [], []
        for _ in range(rng.randint(1, 5)):
            length = rng.randint(1, 15)
            sentence = [rng.choice("가나다 ") for _ in range(length)]
            units.append(sentence)
            gold.append([rng.choice(KLUE_TAGS[:4] + ["O", "O"]) for _ in range(length)])
            predicted.append([rng.choice(KLUE_TAGS[:4] + ["O", "O"]) for _ in range(length)])
        klue_gold, klue_predicted = without_spaces(units, gold), without_spaces(units, predicted)
        reference_entity, reference_character = klue_reference(units, gold, predicted)
        if any(tag != "O" for tags in klue_gold + klue_predicted for tag in tags):  # seqeval's macro of no entity is nan
            assert entity_scores(klue_gold, klue_predicted, "IOB2").macro_f1 == pytest.approx(reference_entity)
        assert tag_macro_f1(klue_gold, klue_predicted, KLUE_TAGS) == pytest.approx(reference_character)


def test_the_klue_keys_are_declared_for_checkpoint_selection():
    assert NerTrainingTask.metric_directions["entity_macro_f1"] == "max"
    assert NerTrainingTask.metric_directions["character_macro_f1"] == "max"
