"""Honest numbers: the data that chooses a checkpoint is never the data a comparison reports, and gains come with intervals."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from prefine.checkpoint import read_run
from prefine.cli import main
from prefine.metrics.intervals import paired_gain
from prefine.tasks.classification import ClassificationFinetuneTask, ClassificationPredictor
from prefine.tasks.selection import stratified_dev_indices
from tests.recipes.test_compare_checkpoints import FINETUNE, tiny_pretraining_with_labels


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_pretraining_with_labels(tmp_path_factory.mktemp("selection"), 80, 40, 12, "--max-steps", "2")


def spy_on_data(monkeypatch) -> dict[str, list]:
    """Record which file every fine-tune evaluated during training (prepare's eval) and which it scored at the end."""
    calls: dict[str, list] = {"selection": [], "trained_on": [], "reported": []}
    prepare, evaluate_source = ClassificationFinetuneTask.prepare, ClassificationPredictor.evaluate_source

    def spied_prepare(self, train, eval, *args, **kwargs):
        calls["trained_on"].append(train)
        calls["selection"].append(eval)
        return prepare(self, train, eval, *args, **kwargs)

    def spied_evaluate(self, source, batch_size):
        calls["reported"].append(source)
        return evaluate_source(self, source, batch_size)

    monkeypatch.setattr(ClassificationFinetuneTask, "prepare", spied_prepare)
    monkeypatch.setattr(ClassificationPredictor, "evaluate_source", spied_evaluate)
    return calls


def test_default_compare_never_scores_the_data_that_chose_a_checkpoint(setup, tmp_path, monkeypatch, capsys):
    calls = spy_on_data(monkeypatch)
    out = tmp_path / "compare"
    test = str(setup / "test.tsv")
    assert (
        main(
            [
                "compare",
                "--init",
                str(setup / "pre"),
                "--train",
                str(setup / "train.tsv"),
                "--eval",
                test,
                "--seeds",
                "2",
                "--fractions",
                "1.0",
                "--out",
                str(out),
                "--registry",
                str(tmp_path / "registry.sqlite"),
                *FINETUNE,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    fine_tunes = 2 * 2  # two starts, two seeds
    # Checkpoints were chosen on the carved dev split, never on --eval; --eval was scored once per fine-tune, at the end.
    dev = str(out / "dev-split" / "dev.jsonl")
    assert calls["selection"] == [dev] * fine_tunes and calls["reported"] == [test] * fine_tunes
    assert calls["trained_on"] == [str(out / "dev-split" / "train.jsonl")] * fine_tunes
    # The dev split and the training part partition --train.
    parts = {
        name: [
            json.loads(line)["document"] + json.loads(line)["label"]
            for line in (out / "dev-split" / f"{name}.jsonl").read_text().splitlines()
        ]
        for name in ("train", "dev")
    }
    original = [line.replace("\t", "") for line in (setup / "train.tsv").read_text().splitlines()[1:]]
    assert Counter(parts["train"] + parts["dev"]) == Counter(original) and len(parts["dev"]) == 4
    assert "checkpoint chosen on a dev split of 0.1 of" in printed
    row = json.loads((out / "compare.json").read_text())[0]
    assert row["reported_on"] == test and "dev split" in row["selected_on"]
    for path in out.glob("*/seed-*/run.json"):
        scoring = read_run(path.parent)["scoring"]
        assert scoring["selected_on"] == dev and scoring["reported_on"] == test and scoring["report_chose_nothing"] is True
        # The reported value is the chosen checkpoint's score on --eval, as `prefine evaluate` computes it.
        reported = json.loads((path.parent / "test_eval_metrics.json").read_text())["accuracy"]
        start = "pretrained" if path.parent.parent.name.startswith("pretrained") else "scratch"
        seed = int(path.parent.name.removeprefix("seed-"))
        assert row[f"{start}_per_seed"][row["seeds"].index(seed)] == pytest.approx(reported)


def test_seeds_give_per_seed_values_and_a_paired_interval(setup, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert (
        main(
            [
                "compare",
                "--init",
                str(setup / "pre"),
                "--train",
                str(setup / "train.tsv"),
                "--eval",
                str(setup / "dev.tsv"),
                "--test",
                str(setup / "test.tsv"),
                "--seeds",
                "3",
                "--seed",
                "5",
                "--fractions",
                "1.0",
                "--out",
                str(out),
                *FINETUNE,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    line = json.loads(printed.strip().splitlines()[-1])["comparison"][0]
    assert line["seeds"] == [5, 6, 7] and len(line["pretrained_per_seed"]) == len(line["scratch_per_seed"]) == 3
    expected = paired_gain(line["pretrained_per_seed"], line["scratch_per_seed"])
    assert (line["gain"], line["gain_low"], line["gain_high"]) == pytest.approx((expected.mean, expected.low, expected.high))
    assert line["verdict"] == expected.verdict
    assert line["selected_on"] == f"--eval {setup / 'dev.tsv'}" and line["reported_on"] == str(setup / "test.tsv")
    assert "| 95% interval | verdict | per seed (pretrained / scratch) |" in printed
    assert "mean ± standard deviation over seeds 5, 6, 7" in printed
    assert sorted(path.parent.name for path in (out / "pretrained-1").glob("seed-*/run.json")) == ["seed-5", "seed-6", "seed-7"]
    # Seeds really differ: each run recorded its own.
    assert {read_run(out / "scratch-1" / f"seed-{seed}")["training"]["seed"] for seed in (5, 6, 7)} == {5, 6, 7}


def test_finetune_records_which_data_chose_and_which_reported(setup, tmp_path, capsys):
    common = ["finetune", "--init", str(setup / "pre"), "--train", str(setup / "train.tsv"), *FINETUNE]
    both = tmp_path / "both"
    assert main([*common, "--eval", str(setup / "dev.tsv"), "--test", str(setup / "test.tsv"), "--out", str(both)]) == 0
    printed = capsys.readouterr().out
    scoring = read_run(both)["scoring"]
    assert scoring["selected_on"] == str(setup / "dev.tsv") and scoring["reported_on"] == str(setup / "test.tsv")
    assert scoring["report_chose_nothing"] is True and (both / "test_eval_metrics.json").exists()
    assert "(the reported score: scored once, chose nothing)" in printed

    carved = tmp_path / "carved"
    assert main([*common, "--test", str(setup / "test.tsv"), "--out", str(carved)]) == 0
    scoring = read_run(carved)["scoring"]
    assert scoring["selected_on"] == str(carved / "dev-split" / "dev.jsonl") and scoring["dev_split"]["num_dev"] == 4
    assert scoring["dev_split"]["stratified"] is True and scoring["reported_on"] == str(setup / "test.tsv")

    # --eval alone: allowed, but the score is labelled as the selection score, not as a result nothing chose.
    alone = tmp_path / "alone"
    assert main([*common, "--eval", str(setup / "dev.tsv"), "--out", str(alone)]) == 0
    assert "optimistic: pass --test FILE" in capsys.readouterr().out
    scoring = read_run(alone)["scoring"]
    assert scoring["reported_on"] == scoring["selected_on"] == str(setup / "dev.tsv") and scoring["report_chose_nothing"] is False


def test_a_bad_test_file_fails_before_any_work(setup, tmp_path, capsys):
    out = tmp_path / "bad"
    assert (
        main(
            [
                "finetune",
                "--init",
                str(setup / "pre"),
                "--train",
                str(setup / "train.tsv"),
                "--test",
                str(tmp_path / "missing.tsv"),
                "--out",
                str(out),
                *FINETUNE,
            ]
        )
        == 2
    )
    assert "missing.tsv does not exist" in capsys.readouterr().err and not out.exists()
    assert main(["compare", "--init", str(setup / "pre"), "--train", str(setup / "train.tsv"), "--out", str(out), *FINETUNE]) == 2
    assert "needs held-out data" in capsys.readouterr().err and not out.exists()
    assert (
        main(
            [
                "compare",
                "--init",
                str(setup / "pre"),
                "--train",
                str(setup / "train.tsv"),
                "--eval",
                str(setup / "test.tsv"),
                "--seeds",
                "0",
                "--out",
                str(out),
                *FINETUNE,
            ]
        )
        == 2
    )
    assert "--seeds 0 must be at least 1" in capsys.readouterr().err and not out.exists()


def test_dev_split_is_stratified_seeded_and_keeps_every_class():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 3 + ["d"]
    dev, stratified = stratified_dev_indices(labels, len(labels), 0.1, seed=0)
    counts = Counter(labels[index] for index in dev)
    assert stratified and len(dev) == 8 and counts["a"] == 5 and counts["b"] == 3
    assert counts["d"] == 0  # a class's last example always stays in training
    again, _ = stratified_dev_indices(labels, len(labels), 0.1, seed=0)
    other, _ = stratified_dev_indices(labels, len(labels), 0.1, seed=1)
    assert again.tolist() == dev.tolist() and other.tolist() != dev.tolist()
    # Regression-like labels (too many distinct values) are split at random.
    _, stratified = stratified_dev_indices([str(value) for value in range(500)], 500, 0.1, seed=0)
    assert not stratified


def test_evaluate_says_which_data_chose_the_checkpoint(setup, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "finetune",
                "--init",
                str(setup / "pre"),
                "--train",
                str(setup / "train.tsv"),
                "--eval",
                str(setup / "dev.tsv"),
                "--out",
                str(run),
                *FINETUNE,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(setup / "dev.tsv")]) == 0
    printed = capsys.readouterr().err
    assert f"checkpoint chosen by accuracy:max on --eval {setup / 'dev.tsv'}" in printed and "this score is optimistic" in printed
    assert main(["evaluate", str(run), "--data", str(setup / "test.tsv")]) == 0
    printed = capsys.readouterr().err
    assert "checkpoint chosen by accuracy:max on --eval" in printed and "optimistic" not in printed
