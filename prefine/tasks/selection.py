"""Which data chooses a fine-tuned checkpoint and which data reports its score.

A score is an estimate of how a model does on new data only if that data chose nothing: not
the checkpoint (the best of several evaluations is optimistic), not a stopping step, not a
learning rate. prefine keeps the two roles apart by name:

* selection data (`--eval`, or a dev split carved out of `--train`) picks the best checkpoint
  and draws the learning curve;
* report data (`--test`) is scored once, at the end, with the chosen checkpoint.

A command that reports (`prefine compare`, the quickstart, the objectives benchmark) and has no
separate selection data carves a dev split out of `--train` here. The split is seeded by its own
seed, not the fine-tuning seed, so every start and every fine-tuning seed of a comparison
chooses its checkpoint on the same examples; it is stratified by label where the task has labels
(each class keeps its share, and no class vanishes from the training side). A task writes the two
parts in its own training format (`FinetuneTask.split_dev`) with the helpers below.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefine.errors import PrefineError

DEV_SPLIT_FOLDER = "dev-split"
# Labels with more distinct values than this are not classes to stratify by (regression scores).
MAX_STRATA = 100
# The way out whenever no dev split can be carved: name the selection data yourself.
PASS_DEV_AND_TEST = "pass --eval DEV (chooses the checkpoint) with --test FILE (reported)"


@dataclass
class DevSplit:
    """A dev split carved out of --train, written as two files the task reads like the original."""

    train: str  # the training part
    dev: str  # the selection part
    num_train: int
    num_dev: int
    stratified: bool  # whether each label kept its share on both sides
    # What was held out whole so related examples never sit on both sides ("article",
    # "paragraph" for QA); "" when single examples were drawn.
    grouped_by: str = ""


@dataclass
class Scoring:
    """Which data chose the checkpoint and which data the reported score comes from (saved in run.json)."""

    selection: str | None  # a path (or dataset name); None when nothing was evaluated during training
    selection_how: str  # "--eval" or "dev split of 10% of train.tsv (seed 0, stratified by label)"
    report: str | None  # --test, or None when the only score is the selection score
    dev_split: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "selected_on": self.selection,
            "selected_how": self.selection_how,
            "reported_on": self.report if self.report is not None else self.selection,
            "report_chose_nothing": self.report is not None,
            "dev_split": self.dev_split,
        }

    def line(self) -> str:
        """One line a person reads before the work starts."""
        if self.selection is None:
            return "no selection data: the last checkpoint is kept"
        chooser = f"checkpoint chosen on {self.selection_how}"
        if self.report is None:
            return f"{chooser}; the score below is on that same data (optimistic: pass --test FILE for a score nothing was chosen on)"
        return f"{chooser}; {self.report} is scored once, with the chosen checkpoint"


def stratified_dev_indices(labels: Sequence[Any] | None, count: int, fraction: float, seed: int) -> tuple[np.ndarray, bool]:
    """Sorted indices of the dev part: round(fraction * count) items (at least one), seeded, stratified by `labels`.

    Stratified when labels are given and look like classes (at most MAX_STRATA distinct values):
    each class gives its share of the dev items (largest remainders get the rounding), but never
    its last example, so no class disappears from training. Returns the indices and whether they
    were stratified.
    """
    if not 0.0 < fraction < 1.0:
        raise PrefineError(f"--dev-fraction {fraction} must be between 0 and 1 (e.g. 0.1)")
    if count < 2:
        raise PrefineError(f"--train has {count} example(s), too few to carve a dev split out of; {PASS_DEV_AND_TEST}")
    rng = np.random.default_rng([seed, 4321])
    strata: dict[Any, list[int]] = {}
    if labels is not None and len(set(labels)) <= MAX_STRATA:
        for index, label in enumerate(labels):
            strata.setdefault(label, []).append(index)
    stratified = len(strata) > 1
    if not stratified:
        strata = {None: list(range(count))}
    # Sorted keys: the split must not depend on the order labels first appear in.
    keys = sorted(strata, key=str)
    target = max(1, int(round(count * fraction)))
    exact = {key: len(strata[key]) * target / count for key in keys}
    quota = {key: min(int(exact[key]), len(strata[key]) - 1) for key in keys}
    by_remainder = sorted(keys, key=lambda key: (-(exact[key] - int(exact[key])), str(key)))
    for key in by_remainder * 2:  # a second round places what classes at capacity could not take
        if sum(quota.values()) >= target:
            break
        if quota[key] < len(strata[key]) - 1:
            quota[key] += 1
    chosen: list[int] = []
    for key in keys:
        chosen.extend(rng.permutation(np.asarray(strata[key]))[: quota[key]].tolist())
    if not chosen:
        raise PrefineError(f"--train has too few examples per label ({count} in all) to carve a dev split out of; {PASS_DEV_AND_TEST}")
    return np.sort(np.asarray(chosen)), stratified


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records one JSON object a line (UTF-8, Korean kept readable); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_split(folder: Path, records: Sequence[dict[str, Any]], dev_indices: np.ndarray, stratified: bool) -> DevSplit:
    """Write `records` as folder/train.jsonl and folder/dev.jsonl, in their original order."""
    in_dev = np.zeros(len(records), dtype=bool)
    in_dev[dev_indices] = True
    train_path, dev_path = folder / "train.jsonl", folder / "dev.jsonl"
    num_train = write_jsonl(train_path, (record for record, dev in zip(records, in_dev) if not dev))
    num_dev = write_jsonl(dev_path, (record for record, dev in zip(records, in_dev) if dev))
    return DevSplit(str(train_path), str(dev_path), num_train, num_dev, stratified)


def describe_split(split: DevSplit, train: str, fraction: float, seed: int) -> str:
    how = ("stratified by label" if split.stratified else "random") + (f", whole {split.grouped_by}s" if split.grouped_by else "")
    return f"a dev split of {fraction:g} of {train} ({split.num_dev} examples, seed {seed}, {how}; {split.num_train} left to train on)"


def carve_dev_split(task: Any, train: str, data: Any, fraction: float, seed: int, folder: Path) -> Scoring:
    """Carve the dev split with `task` into `folder` (replacing an earlier one) and say, as a Scoring without report data, what chose."""
    shutil.rmtree(folder, ignore_errors=True)
    split = task.split_dev(train, data, fraction, seed, folder)
    return Scoring(
        selection=split.dev,
        selection_how=describe_split(split, train, fraction, seed),
        report=None,
        dev_split={
            "from": train,
            "fraction": fraction,
            "seed": seed,
            "stratified": split.stratified,
            "grouped_by": split.grouped_by,
            "train": split.train,
            "dev": split.dev,
            "num_train": split.num_train,
            "num_dev": split.num_dev,
        },
    )
