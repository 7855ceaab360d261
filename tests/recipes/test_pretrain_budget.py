"""`--preset auto`: the vocabulary and model size chosen from the budget, the corpus and measured speed, and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefine.cli import main
from prefine.model import PRESETS, preset_config
from prefine.recipes.pretrain_budget import (
    CANDIDATE_PRESETS,
    TOKENS_PER_PARAMETER,
    USEFUL_EPOCHS,
    choose_preset,
    choose_vocab_size,
    non_embedding_parameters,
    presets_worth_measuring,
)
from tests.conftest import synthetic_documents, write_bert_text

# What each preset needs to read: TOKENS_PER_PARAMETER per encoder weight.
NEEDED = {preset: TOKENS_PER_PARAMETER * non_embedding_parameters(preset_config(preset)) for preset in CANDIDATE_PRESETS}
LARGE_CORPUS = 10**12  # so the corpus never caps what counts


def test_candidates_are_presets_in_increasing_size():
    assert set(CANDIDATE_PRESETS) <= set(PRESETS)
    sizes = [NEEDED[preset] for preset in CANDIDATE_PRESETS]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_vocabulary_grows_with_the_corpus():
    assert choose_vocab_size(500_000)[0] == 8_000
    assert choose_vocab_size(9_999_999)[0] == 8_000
    assert choose_vocab_size(10_000_000)[0] == 16_000
    assert choose_vocab_size(99_999_999)[0] == 16_000
    assert choose_vocab_size(3_300_000_000)[0] == 30_522
    assert "500k words" in choose_vocab_size(500_000)[1]


def test_the_largest_preset_the_budget_affords_is_chosen():
    budget = 3600.0
    # tiny affords itself (exactly enough), mini reads 1% short of what it needs.
    rates = {"tiny": NEEDED["tiny"] / budget, "mini": 0.99 * NEEDED["mini"] / budget}
    choice = choose_preset(budget, LARGE_CORPUS, rates)
    assert choice.preset == "tiny"
    assert "mini reads" in choice.reason and "needs" in choice.reason
    rates["mini"] = NEEDED["mini"] / budget
    rates["small"] = 0.5 * NEEDED["small"] / budget
    assert choose_preset(budget, LARGE_CORPUS, rates).preset == "mini"
    # A faster machine (or a longer budget) moves the choice up.
    assert choose_preset(2 * budget, LARGE_CORPUS, {**rates, "small": NEEDED["small"] / budget}).preset == "small"


def test_a_small_corpus_caps_the_useful_tokens():
    budget = 3600.0
    rates = {"tiny": 100 * NEEDED["tiny"] / budget, "mini": 10 * NEEDED["mini"] / budget}
    assert choose_preset(budget, LARGE_CORPUS, rates).preset == "mini"
    # Four passes over this corpus give mini half of what it needs, however fast the machine.
    corpus_tokens = int(NEEDED["mini"] / USEFUL_EPOCHS / 2)
    choice = choose_preset(budget, corpus_tokens, rates)
    assert choice.preset == "tiny"
    assert "passes over the corpus" in choice.reason


def test_tiny_when_nothing_affords_itself():
    choice = choose_preset(60.0, LARGE_CORPUS, {"tiny": 1000.0})
    assert choice.preset == "tiny" and choice.reason.endswith("the smallest preset")


def test_the_choice_is_deterministic_for_given_inputs():
    rates = {"tiny": 25_000.0, "mini": 7_000.0}
    first = choose_preset(1800.0, 2_000_000, rates)
    assert all(choose_preset(1800.0, 2_000_000, dict(rates)) == first for _ in range(3))


def test_measuring_stops_at_the_first_preset_that_cannot_afford_itself():
    budget = 600.0
    measured = []

    def measure(preset: str) -> float:
        measured.append(preset)
        return 2 * NEEDED[preset] / budget if preset in ("tiny", "mini") else 0.1 * NEEDED[preset] / budget

    rates = presets_worth_measuring(budget, LARGE_CORPUS, measure)
    assert measured == ["tiny", "mini", "small"]  # medium and base are never built
    assert choose_preset(budget, LARGE_CORPUS, rates).preset == "mini"
    measured.clear()
    presets_worth_measuring(budget, LARGE_CORPUS, lambda preset: measured.append(preset) or 1.0)
    assert measured == ["tiny"]


def _pretrain(tmp_path: Path, out: str, *extra: str) -> int:
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(80))
    flags = ["--min-frequency", "1", "--max-seq-length", "32", "--batch-size", "8", "--num-threads", "1", "--no-progress"]
    return main(
        ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / out), "--registry", str(tmp_path / "r.sqlite"), *flags, *extra]
    )


def test_auto_under_a_budget_chooses_prints_and_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _pretrain(tmp_path, "run", "--max-time", "3s") == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    choice = record["budget_choice"]
    assert record["run"]["preset"] == choice["preset"] in CANDIDATE_PRESETS
    assert f"auto: preset {choice['preset']}, vocabulary" in printed and choice["reason"] in printed
    # The synthetic corpus is a few thousand words: the smallest vocabulary, recorded with its reason
    # (which this corpus cannot fill: the model's is what the trained tokenizer holds).
    assert record["tokenizer"]["vocab_size"] == 8_000
    assert choice["vocab_size"] == record["model"]["vocab_size"] < 8_000
    assert choice["inputs"]["corpus_words"] > 0 and "words of corpus" in choice["vocab_reason"]
    # Everything the rule read is in run.json: re-deriving the choice gives the same answer.
    inputs = choice["inputs"]
    again = choose_preset(inputs["budget_seconds"], inputs["corpus_tokens"], inputs["measured_tokens_per_second"])
    assert (again.preset, again.reason) == (choice["preset"], choice["reason"])
    assert list(inputs["measured_tokens_per_second"])[0] == "tiny"
    # A resumed run keeps the choice it started with, and its record.
    assert main(["pretrain", "--resume", str(tmp_path / "run"), "--max-time", "4s", "--no-progress"]) == 0
    resumed = json.loads((tmp_path / "run" / "run.json").read_text())
    assert resumed["budget_choice"] == choice and resumed["run"]["preset"] == choice["preset"]


def test_auto_keeps_a_given_vocabulary(tmp_path: Path):
    assert _pretrain(tmp_path, "run", "--max-time", "2s", "--vocab-size", "300") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["tokenizer"]["vocab_size"] == 300
    assert record["budget_choice"]["inputs"]["corpus_words"] is None
    assert "given" in record["budget_choice"]["vocab_reason"]


def test_without_a_budget_auto_is_mini_as_before(tmp_path: Path):
    assert _pretrain(tmp_path, "run", "--max-steps", "1", "--vocab-size", "300") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["run"]["preset"] == "mini" and "budget_choice" not in record


def test_a_named_preset_is_never_second_guessed(tmp_path: Path):
    assert _pretrain(tmp_path, "run", "--max-time", "2s", "--preset", "tiny", "--vocab-size", "300") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["run"]["preset"] == "tiny" and "budget_choice" not in record


def test_shape_flags_need_a_named_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert _pretrain(tmp_path, "run", "--max-time", "2s", "--hidden-size", "64") != 0
    err = capsys.readouterr().err
    assert "--hidden-size shapes a named preset" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_model_line_shows_the_shape_the_flags_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # "tiny" alone would hide that --num-hidden-layers changed it.
    assert _pretrain(tmp_path, "run", "--max-steps", "1", "--preset", "tiny", "--num-hidden-layers", "3", "--vocab-size", "300") == 0
    assert "model: tiny (3 blocks of 128, " in capsys.readouterr().out
