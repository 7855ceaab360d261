"""`prefine compare --checkpoints`: fine-tune from each pre-training checkpoint (and from scratch) at each label fraction."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import TRAINER_STATE_FILE, load_trainer_state
from prefine.cli import main
from prefine.recipes import finetune as finetune_recipe
from prefine.recipes.checkpoint_curve import format_checkpoint_table, plot_checkpoint_curve, plot_panels, select_checkpoints
from tests.conftest import TINY_PRETRAIN_FLAGS as TINY
from tests.conftest import synthetic_documents, write_bert_text

FINETUNE = [
    "--text-column",
    "document",
    "--label-column",
    "label",
    "--max-steps",
    "2",
    "--batch-size",
    "8",
    "--max-seq-length",
    "32",
    "--num-threads",
    "1",
    "--no-progress",
]


def write_sentiment(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = ["document\tlabel"]
    for _ in range(count):
        good = rng.random() < 0.5
        word = rng.choice(["great", "good", "lovely"] if good else ["bad", "awful", "boring"])
        lines.append(f"the cat sees a {word} house\t{'pos' if good else 'neg'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_pretraining_with_labels(root: Path, documents: int, train: int, dev: int, *pretrain_flags: str) -> Path:
    """A tiny pre-training run at root/pre, and train/dev/test.tsv sentiment sets (16 test examples) beside it."""
    corpus = write_bert_text(root / "corpus.txt", synthetic_documents(documents))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFINE_CACHE", str(root / "cache"))
        assert (
            main(
                [
                    "pretrain",
                    "--corpus",
                    str(corpus),
                    "--out",
                    str(root / "pre"),
                    "--registry",
                    str(root / "registry.sqlite"),
                    *TINY,
                    *pretrain_flags,
                ]
            )
            == 0
        )
    write_sentiment(root / "train.tsv", train, 1)
    write_sentiment(root / "dev.tsv", dev, 3)
    write_sentiment(root / "test.tsv", 16, 2)
    return root


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pre-training run with checkpoints at steps 2, 4 and 6, plus a small labelled set."""
    return tiny_pretraining_with_labels(
        tmp_path_factory.mktemp("curve"), 120, 32, 16, "--max-steps", "6", "--save-every", "2", "--keep-last", "10", "--eval-every", "2"
    )


def compare(root: Path, out: Path, *extra: str) -> int:
    # Its own dev set chooses the checkpoints and test.tsv reports, so the training set stays whole.
    return main(
        [
            "compare",
            "--init",
            str(root / "pre"),
            "--train",
            str(root / "train.tsv"),
            "--eval",
            str(root / "dev.tsv"),
            "--test",
            str(root / "test.tsv"),
            "--seeds",
            "1",
            "--out",
            str(out),
            "--registry",
            str(out.parent / "registry.sqlite"),
            *FINETUNE,
            *extra,
        ]
    )


def run_records(out: Path) -> dict[str, dict]:
    """run.json of every fine-tune, by start and fraction (one seed each here)."""
    return {path.parent.parent.name: json.loads(path.read_text()) for path in out.glob("*/seed-*/run.json")}


def test_checkpoints_all_finetunes_from_every_checkpoint_and_scratch_at_each_fraction(pretrained, tmp_path, capsys):
    out = tmp_path / "curve"
    assert compare(pretrained, out, "--checkpoints", "all", "--fractions", "0.5,1.0") == 0
    printed = capsys.readouterr().out

    checkpoints = pretrained / "pre" / "checkpoints"
    records = run_records(out)
    expected = {f"{start}-{fraction}" for start in ("scratch", "step-2", "step-4", "step-6") for fraction in ("0.5", "1")}
    assert set(records) == expected  # one fine-tune per start point and fraction, nothing else
    for name, record in records.items():
        start, fraction = name.rsplit("-", 1)
        assert record["kind"] == "finetune" and record["run"]["train_fraction"] == float(fraction)
        if start == "scratch":
            assert record["run"]["from_scratch"] is True
        else:
            step = int(start.removeprefix("step-"))
            assert record["run"]["from_scratch"] is False
            assert record["init"] == f"prefine checkpoint {checkpoints / f'step-{step:08d}'}"
        (seed_dir,) = (out / name).glob("seed-*")
        assert (seed_dir / "eval_metrics.json").exists() and (seed_dir / "test_eval_metrics.json").exists()

    rows = json.loads((out / "compare.json").read_text())
    assert [row["step"] for row in rows] == [0, 2, 4, 6]
    assert [row["from_scratch"] for row in rows] == [True, False, False, False]
    assert [row["checkpoint"] for row in rows[1:]] == [str(checkpoints / f"step-{step:08d}") for step in (2, 4, 6)]
    assert rows[0]["pretraining_seconds"] == 0.0 and rows[0]["tokens_seen"] == 0
    for row in rows[1:]:  # each checkpoint's own record of its cost (None for runs that did not record it)
        state = load_trainer_state(Path(row["checkpoint"]))
        assert (row["pretraining_seconds"], row["tokens_seen"]) == (state.get("elapsed_seconds"), state.get("tokens_seen"))
    for row in rows:
        assert [result["fraction"] for result in row["results"]] == [0.5, 1.0]
        assert [result["examples"] for result in row["results"]] == [16, 32]
        assert all(0.0 <= result["value"] <= 1.0 for result in row["results"]) and row["metric"] == "accuracy"
    # MLM accuracy comes from the pre-training run's own evaluations at those steps.
    evaluations = {
        line["step"]: line["eval/mlm_accuracy"]
        for line in map(json.loads, (pretrained / "pre" / "metrics.jsonl").read_text().splitlines())
        if "eval/mlm_accuracy" in line
    }
    assert [row["mlm_accuracy"] for row in rows] == [evaluations[step] for step in (0, 2, 4, 6)]

    assert "| step | pre-training time | tokens seen | MLM accuracy | accuracy @ 0.5 (16 ex.) | accuracy @ 1 (32 ex.) |" in printed
    assert "| scratch (0) |" in printed and "| 6 |" in printed
    assert json.loads(printed.strip().splitlines()[-1])["checkpoint_comparison"] == rows
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_list_finetunes_only_the_named_steps(pretrained, tmp_path):
    out = tmp_path / "some"
    assert compare(pretrained, out, "--checkpoints", "2,6", "--fractions", "1.0") == 0
    assert set(run_records(out)) == {"scratch-1", "step-2-1", "step-6-1"}
    assert [row["step"] for row in json.loads((out / "compare.json").read_text())] == [0, 2, 6]


def test_missing_step_is_rejected_before_any_work(pretrained, tmp_path, capsys, monkeypatch):
    def no_finetuning(*args, **kwargs):
        raise AssertionError("fine-tuning started before the arguments were checked")

    monkeypatch.setattr(finetune_recipe, "run_finetune", no_finetuning)
    out = tmp_path / "missing"
    assert compare(pretrained, out, "--checkpoints", "2,5", "--fractions", "1.0") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no checkpoint for step 5" in err and "available steps: 2, 4, 6" in err and "--keep-last" in err
    assert not out.exists()
    assert compare(pretrained, out, "--checkpoints", "two", "--fractions", "1.0") == 2
    assert "must be 'all' or comma-separated steps" in capsys.readouterr().err
    assert not out.exists()


def test_checkpoints_need_a_pretraining_run(pretrained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(finetune_recipe, "run_finetune", lambda *args, **kwargs: pytest.fail("fine-tuning started"))
    finetuned = tmp_path / "finetuned"
    finetuned.mkdir()
    (finetuned / "run.json").write_text(json.dumps({"kind": "finetune"}))
    checkpoint = pretrained / "pre" / "checkpoints" / "step-00000002"
    for init, message in ((finetuned, "is a finetune run"), (checkpoint, "is not one"), (tmp_path / "nowhere", "is not one")):
        out = tmp_path / "out"
        assert (
            main(
                [
                    "compare",
                    "--init",
                    str(init),
                    "--checkpoints",
                    "all",
                    "--train",
                    str(pretrained / "train.tsv"),
                    "--eval",
                    str(pretrained / "test.tsv"),
                    "--out",
                    str(out),
                    *FINETUNE,
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--checkpoints needs --init to be a prefine pre-training run folder" in err and message in err
        assert not out.exists()


def test_time_and_tokens_come_from_each_checkpoints_trainer_state(pretrained, tmp_path):
    import shutil

    run = tmp_path / "pre"
    shutil.copytree(pretrained / "pre", run)

    def rewrite_state(step: int, **changes) -> None:
        path = run / "checkpoints" / f"step-{step:08d}" / TRAINER_STATE_FILE
        state = torch.load(path, weights_only=True)
        state = {key: value for key, value in state.items() if key not in ("elapsed_seconds", "tokens_seen")}
        torch.save({**state, **changes}, path)

    rewrite_state(2)  # saved before checkpoints recorded their cost
    rewrite_state(4, elapsed_seconds=125.5, tokens_seen=2048)
    (run / "checkpoints" / "step-00000006" / TRAINER_STATE_FILE).unlink()  # weights only

    _, chosen = select_checkpoints(str(run), "all")
    assert [(c.step, c.elapsed_seconds, c.tokens_seen) for c in chosen] == [(2, None, None), (4, 125.5, 2048), (6, None, None)]


def test_table_and_plot_show_cost_and_fall_back_to_steps(tmp_path):
    def row(step, seconds, tokens, values):
        return {
            "step": step,
            "from_scratch": step == 0,
            "checkpoint": None,
            "pretraining_seconds": seconds,
            "tokens_seen": tokens,
            "mlm_accuracy": None if step == 0 else 0.25,
            "metric": "accuracy",
            "results": [{"fraction": f, "examples": e, "value": v, "run": ""} for f, e, v in zip((0.1, 1.0), (10, 100), values)],
        }

    recorded = [row(0, 0.0, 0, (0.5, 0.6)), row(1000, 300.0, 2_500_000, (0.6, 0.7)), row(2000, 7500.0, 5_000_000, (0.65, 0.75))]
    table = format_checkpoint_table(recorded)
    assert "| scratch (0) | 0s | 0 | - | 0.5000 | 0.6000 |" in table
    assert "| 1000 | 5m 00s | 2.5M | 0.2500 | 0.6000 | 0.7000 |" in table
    assert "| 2000 | 2h 05m | 5.0M | 0.2500 | 0.6500 | 0.7500 |" in table
    assert plot_panels(recorded) == [
        ("pretraining_seconds", 3600.0, "pre-training time (hours)"),
        ("tokens_seen", 1.0, "pre-training tokens seen"),
    ]
    assert plot_checkpoint_curve(recorded, tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Runs saved before checkpoints recorded their cost: dashes in the table, steps on the plot's x-axis.
    older = [row(0, 0.0, 0, (0.5, 0.6)), row(1000, None, None, (0.6, 0.7))]
    assert "| 1000 | - | - | 0.2500 | 0.6000 | 0.7000 |" in format_checkpoint_table(older)
    assert [key for key, _, _ in plot_panels(older)] == ["step"]
    assert [key for key, _, _ in plot_panels([older[0], row(1000, 90.0, None, (0.6, 0.7))])] == ["pretraining_seconds", "step"]
    assert plot_checkpoint_curve(older, tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_with_seeds_each_point_shows_its_spread_and_its_gain_interval(tmp_path):
    def row(step, per_seed):
        return {
            "step": step,
            "from_scratch": step == 0,
            "checkpoint": None,
            "pretraining_seconds": 0.0 if step == 0 else 60.0 * step,
            "tokens_seen": 1000 * step,
            "mlm_accuracy": None,
            "metric": "accuracy",
            "results": [{"fraction": 1.0, "examples": 100, "value": sum(per_seed) / 3, "per_seed": per_seed, "run": ""}],
        }

    rows = [row(0, [0.50, 0.60, 0.55]), row(1, [0.52, 0.58, 0.57]), row(2, [0.70, 0.80, 0.75])]
    table = format_checkpoint_table(rows)
    assert "| scratch (0) | 0s | 0 | - | 0.5500 ± 0.0500 |" in table
    # Gains paired by seed: +0.02, -0.02, +0.02 (mean +0.0067, interval spans zero); +0.20 each (helped).
    assert "0.5567 ± 0.0321, gain +0.0067 [-0.0507, +0.0640] no clear difference |" in table
    assert "0.7500 ± 0.0500, gain +0.2000 [+0.2000, +0.2000] helped |" in table
    assert plot_checkpoint_curve(rows, tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
