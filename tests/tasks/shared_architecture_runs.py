"""Two fine-tuned runs of different tasks that export the same transformers class, for the export and serve tests.

The toy text-length task (text_length_task.py, registered outside the package) and classification
in regression mode both train a BertForSequenceClassification with one output. Nothing in a
checkpoint's weights or architecture tells them apart; only the task each run recorded does, so
these runs show that export and serve hand every run to its own task.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from prefine.cli import main
from prefine.tasks import interface
from tests.conftest import write_tiny_bert_run

sys.path.insert(0, str(Path(__file__).parent))
import text_length_task  # noqa: E402

WORDS = "alpha beta gamma delta river stone cloud green quiet small tower light".split()
TRAINING = ["--max-steps", "3", "--batch-size", "8", "--max-seq-length", "32", "--num-threads", "1", "--no-progress", "--seed", "0"]
TEXTS = ["alpha beta", "river stone cloud green quiet small tower"]


@contextlib.contextmanager
def toy_task_registered() -> Iterator[None]:
    """The toy task registered (as its own code would do before running prefine), then the registry as it was."""
    interface.all_tasks()  # the built-in tasks first, as the CLI would load them
    before = dict(interface._TASKS)
    text_length_task.register()
    try:
        yield
    finally:
        interface._TASKS.clear()
        interface._TASKS.update(before)


def train_runs(root: Path) -> tuple[Path, Path]:
    """(the text-length run, the regression run), each fine-tuned a few steps from one tiny BERT; the toy task must be registered."""
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 10))) for _ in range(32)]
    (root / "lines.txt").write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    # Half-word scores: not whole numbers, so classification picks regression by itself.
    scores = "".join(f"{text}\t{len(text.split()) / 2}\n" for text in texts)
    (root / "scores.tsv").write_text("sentence\tscore\n" + scores, encoding="utf-8")
    init = write_tiny_bert_run(root / "tiny-bert", WORDS * 3, vocab_size=120)
    length_run, regression_run = root / "length", root / "regression"
    length_arguments = ["--task", "text-length", "--train", str(root / "lines.txt"), "--out", str(length_run)]
    assert main(["finetune", "--init", str(init), *length_arguments, *TRAINING]) == 0
    assert main(["finetune", "--init", str(init), "--train", str(root / "scores.tsv"), "--out", str(regression_run), *TRAINING]) == 0
    return length_run, regression_run
