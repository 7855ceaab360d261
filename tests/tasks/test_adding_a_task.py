"""A task written outside the package plugs into every generic command (docs/adding-a-task.md).

`text_length_task.TextLengthTask` is registered here and nowhere else; `prefine finetune`,
`evaluate`, `predict` and `compare` then run it, its own flag (--length-unit) works, and its
metric (mean absolute error, lower is better) picks the best checkpoint by its declared direction.
"""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest

from prefine.checkpoint import read_pointer, read_run
from prefine.cli import main
from prefine.tasks import interface
from tests.conftest import write_tiny_bert_run

sys.path.insert(0, str(Path(__file__).parent))
import text_length_task  # noqa: E402

WORDS = "alpha beta gamma delta river stone cloud green quiet small tower light".split()
TRAINING = ["--batch-size", "16", "--learning-rate", "3e-3", "--num-threads", "1", "--no-progress", "--seed", "0"]


@pytest.fixture(autouse=True)
def registered():
    """Register the toy task for one test, then restore the registry as it was."""
    interface.all_tasks()  # the built-in tasks first, as the CLI would load them
    before = dict(interface._TASKS)
    text_length_task.register()
    yield
    interface._TASKS.clear()
    interface._TASKS.update(before)


def checkpoint_at(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:08d}"


def write_texts(path: Path, count: int, seed: int) -> str:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(count)) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def setup(tmp_path) -> dict[str, str]:
    data = {"train": write_texts(tmp_path / "train.txt", 192, 1), "eval": write_texts(tmp_path / "eval.txt", 48, 2)}
    run_dir = write_tiny_bert_run(tmp_path / "tiny-bert", WORDS * 3, vocab_size=120)
    return {**data, "init": str(run_dir), "root": str(tmp_path)}


def test_a_task_registered_outside_the_package_trains_evaluates_and_predicts(setup, capsys, monkeypatch):
    out = Path(setup["root"]) / "length"
    code = main(
        [
            "finetune",
            "--task",
            "text-length",
            "--init",
            setup["init"],
            "--train",
            setup["train"],
            "--eval",
            setup["eval"],
            "--out",
            str(out),
            "--epochs",
            "30",
            "--eval-every",
            "60",
            "--max-seq-length",
            "32",
            *TRAINING,
        ]
    )
    assert code == 0
    saved = read_run(out)
    assert saved["task"] == "text-length" and saved["data"] == {"max_seq_length": 32, "length_unit": "words"}
    assert saved["training"]["best_metric"] == "mae:min"  # the task's declared direction, not a guess from the name

    curve = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    maes = {record["step"]: record["eval/mae"] for record in curve if "eval/mae" in record}
    best_step = min(maes, key=maes.get)
    assert max(maes, key=maes.get) != best_step  # the curve moved, so keeping the lowest error is a real choice
    assert read_pointer(out, "best") == checkpoint_at(out, best_step)

    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", setup["eval"]]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["mae"] == pytest.approx(maes[best_step], rel=1e-5)
    # Lengths run from 1 to 12 words (mean absolute deviation about 3): the model must have learned to count.
    assert evaluated["mae"] < 1.5

    monkeypatch.setattr(sys, "stdin", io.StringIO("alpha\nalpha beta gamma delta river stone cloud green quiet small\n"))
    assert main(["predict", str(out)]) == 0
    short, long = [json.loads(line)["length"] for line in capsys.readouterr().out.strip().splitlines()]
    assert short < long


def test_a_task_flag_is_its_own_and_foreign_flags_are_refused(setup, capsys):
    out = Path(setup["root"]) / "chars"
    assert (
        main(
            [
                "finetune",
                "--task",
                "text-length",
                "--length-unit",
                "characters",
                "--init",
                setup["init"],
                "--train",
                setup["train"],
                "--out",
                str(out),
                "--max-steps",
                "2",
                *TRAINING,
            ]
        )
        == 0
    )
    assert read_run(out)["data"]["length_unit"] == "characters"
    # --doc-stride belongs to QA: refused before any work, nothing written.
    capsys.readouterr()
    refused = Path(setup["root"]) / "refused"
    assert (
        main(
            [
                "finetune",
                "--task",
                "text-length",
                "--doc-stride",
                "32",
                "--init",
                setup["init"],
                "--train",
                setup["train"],
                "--out",
                str(refused),
                *TRAINING,
            ]
        )
        == 2
    )
    assert "--task text-length does not use --doc-stride" in capsys.readouterr().err
    assert not refused.exists()


def test_compare_runs_the_registered_task_with_its_flags(setup, capsys):
    out = Path(setup["root"]) / "compare"
    code = main(
        [
            "compare",
            "--task",
            "text-length",
            "--length-unit",
            "characters",
            "--init",
            setup["init"],
            "--train",
            setup["train"],
            "--eval",
            setup["eval"],
            "--out",
            str(out),
            "--fractions",
            "0.5,1.0",
            "--max-steps",
            "3",
            "--seeds",
            "1",
            *TRAINING,
        ]
    )
    assert code == 0
    rows = json.loads((out / "compare.json").read_text())
    # The task's own split_dev carved 10% of the 192 training texts to choose checkpoints on.
    assert [row["metric"] for row in rows] == ["mae", "mae"] and [row["examples"] for row in rows] == [86, 173]
    assert all(row["reported_on"] == setup["eval"] and "dev split" in row["selected_on"] for row in rows)
    for start in ("pretrained", "scratch"):
        (seed_dir,) = (out / f"{start}-0.5").glob("seed-*")
        assert read_run(seed_dir)["data"]["length_unit"] == "characters"
