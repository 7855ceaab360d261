"""Learning curves of recorded runs: read each run's metrics.jsonl and draw one metric against step.

matplotlib is an optional extra, imported only here and only when a plot is asked for, and used
through the Agg canvas directly so no GUI backend or global pyplot state is ever touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefine.errors import PrefineError
from prefine.registry.store import RunRecord

METRICS_FILENAME = "metrics.jsonl"


def read_metrics_log(path: Path) -> list[dict]:
    """The JSON objects of a metrics.jsonl file, one per non-blank line."""
    if not path.is_file():
        raise PrefineError(f"no metrics log at {path}; the run never logged metrics or its folder was moved")
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            # A run killed mid-write leaves a truncated last line (no trailing newline): the
            # curve up to it is still good.
            if line_number == len(lines):
                continue
            raise PrefineError(f"{path} line {line_number} is not valid JSON ({error.msg}); fix or delete that line") from error
    return records


def metric_curve(run: RunRecord, metric: str) -> tuple[list[float], list[float]]:
    """(steps, values) of `metric` from the run's metrics.jsonl, in logged order."""
    records = read_metrics_log(run.artifact_path / METRICS_FILENAME)
    steps, values = [], []
    for record in records:
        if metric in record and "step" in record:
            steps.append(record["step"])
            values.append(record[metric])
    if not steps:
        available = sorted({key for record in records for key in record if key != "step"})
        raise PrefineError(f"run {run.name} has no metric {metric!r} in its {METRICS_FILENAME}; it has: {', '.join(available) or 'none'}")
    return steps, values


def plot_runs(runs: list[RunRecord], metric: str, out: Path) -> Path:
    """Write a PNG with one curve of `metric` per run; returns the path written."""
    curves = [(run.name, *metric_curve(run, metric)) for run in runs]
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PrefineError("plotting needs matplotlib: pip install prefine[plot]") from error
    figure = Figure(figsize=(8, 5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, steps, values in curves:
        axes.plot(steps, values, label=name, marker="." if len(steps) < 50 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(metric)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=120)
    return out
