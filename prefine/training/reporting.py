"""Mirroring the training loop's metrics to experiment trackers (`--report-to`); metrics.jsonl stays the source of truth.

Every record the loop appends to metrics.jsonl (training loss, learning rate, tokens/s, elapsed
time, evaluation metrics, each with its step) is also handed to the reporters chosen here. Only
TensorBoard exists today: its event files go into the run folder itself, so
`tensorboard --logdir runs/` shows every run under its folder name. Nothing is reported unless
asked for (trackers that switch themselves on surprise people), and a tracker whose package is
missing is an error at startup, naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Protocol

from prefine.errors import PrefineError

REPORTERS = ("none", "tensorboard")


class Reporter(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def check_report_to(report_to: str) -> None:
    """Fail before any work when the chosen tracker cannot be used."""
    if report_to not in REPORTERS:
        raise PrefineError(f"--report-to {report_to!r} is not supported; choose one of {', '.join(REPORTERS)}")
    if report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise PrefineError("--report-to tensorboard needs the tensorboard extra: pip install 'prefine[tensorboard]'")


class TensorBoardReporter:
    """Scalars into TensorBoard event files in `log_dir`, flushed as they come (a killed run keeps its curves)."""

    def __init__(self, log_dir: Path, resumed_step: int):
        check_report_to("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run re-logs the steps after its checkpoint; purge_step makes TensorBoard
        # drop what the first session logged past that point, as metrics.jsonl is truncated.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=resumed_step + 1 if resumed_step >= 0 else None)

    def write(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_reporter(report_to: str, run_dir: Path, resumed_step: int) -> Reporter | None:
    """The reporter for `--report-to` (None for "none"); `resumed_step` is -1 for a fresh run."""
    check_report_to(report_to)
    if report_to == "tensorboard":
        return TensorBoardReporter(run_dir, resumed_step)
    return None
