"""`prefine compare --checkpoints`: how much pre-training is enough?

Each saved checkpoint of a pre-training run is a point on a curve: fine-tune from it (and from
random weights, the step-0 point) at a few label fractions, and plot the downstream metric
against the pre-training time and tokens that checkpoint cost. Where the curve is still rising,
training longer pays; where it is flat, it does not.

This module finds and describes the checkpoints and draws the table and the plot; the fine-tunes
themselves run in `prefine.recipes.compare.run_checkpoint_comparison`. With several seeds every
point carries its uncertainty: the table gives each checkpoint's mean ± spread and its gain over
random weights with the 95% interval paired over seeds (the verdict only where it excludes zero),
and the plot draws each point's 95% interval of the mean, so "still rising" is read against noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prefine.checkpoint import CHECKPOINTS_DIR, METRICS_FILE, WEIGHTS_FILE, is_run_dir, load_trainer_state, read_run
from prefine.errors import PrefineError
from prefine.metrics.intervals import paired_gain, t_quantile_975

CHECKPOINTS_HELP = (
    "fine-tune from saved checkpoints of the --init pre-training run instead of only its final weights: "
    "'all', or steps such as 1000,2000,5000 (plus random weights as the step-0 point), and plot the metric "
    "against pre-training time and tokens seen. Only checkpoints still on disk can be used: prefine pretrain "
    "keeps the last --keep-last of them (plus the best), so raise --keep-last there (and set --save-every) "
    "to keep more points on the curve. Empty: compare the final weights with random weights"
)


@dataclass
class PretrainCheckpoint:
    """A saved pre-training checkpoint and what it cost to reach it."""

    step: int
    path: Path
    elapsed_seconds: float | None  # wall-clock pre-training time up to this step, when the run recorded it
    tokens_seen: int | None  # training tokens consumed up to this step, when the run recorded it
    mlm_accuracy: float | None  # held-out MLM accuracy evaluated at exactly this step, if it was


def _step_of(path: Path) -> int | None:
    suffix = path.name.removeprefix("step-")
    return int(suffix) if suffix.isdigit() else None


def pretraining_run(init: str) -> tuple[Path, dict]:
    """The run folder --init names, checked to be a prefine pre-training run (for --checkpoints)."""
    run_dir = Path(init)
    if not init or not run_dir.is_dir() or not is_run_dir(run_dir):
        raise PrefineError(
            f"--checkpoints needs --init to be a prefine pre-training run folder (the --out of prefine pretrain); "
            f"{init or '(none given)'} is not one"
        )
    record = read_run(run_dir)
    if record.get("kind") != "pretrain":
        raise PrefineError(f"--checkpoints needs --init to be a prefine pre-training run folder; {run_dir} is a {record.get('kind')} run")
    return run_dir, record


def available_steps(run_dir: Path) -> dict[int, Path]:
    """step -> folder of every complete checkpoint in a run (a half-written one has no weights file)."""
    found = {}
    for path in (run_dir / CHECKPOINTS_DIR).glob("step-*"):
        step = _step_of(path)
        if step is not None and path.is_dir() and (path / WEIGHTS_FILE).exists():
            found[step] = path
    return dict(sorted(found.items()))


def parse_checkpoint_spec(spec: str) -> list[int] | None:
    """'all' -> None (every checkpoint); '1000,2000' -> [1000, 2000]."""
    text = spec.strip()
    if text.lower() == "all":
        return None
    steps = []
    for part in text.split(","):
        part = part.strip().removeprefix("step-")
        if not part:
            continue
        if not part.isdigit():
            raise PrefineError(f"--checkpoints {spec!r} must be 'all' or comma-separated steps such as 1000,2000,5000")
        steps.append(int(part))
    if not steps:
        raise PrefineError(f"--checkpoints {spec!r} names no step; pass 'all' or steps such as 1000,2000,5000")
    return sorted(set(steps))


def mlm_accuracy_by_step(run_dir: Path) -> dict[int, float]:
    path = run_dir / METRICS_FILE
    if not path.exists():
        return {}
    by_step = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; the others still count
        if isinstance(record, dict) and "eval/mlm_accuracy" in record and "step" in record:
            by_step[int(record["step"])] = float(record["eval/mlm_accuracy"])
    return by_step


def _cost_of(checkpoint: Path) -> tuple[float | None, int | None]:
    """Pre-training time and tokens up to a checkpoint; None where the run did not record them."""
    try:
        state = load_trainer_state(checkpoint)
    except PrefineError:
        return None, None
    elapsed = state.get("elapsed_seconds")
    tokens = state.get("tokens_seen")
    return (None if elapsed is None else float(elapsed)), (None if tokens is None else int(tokens))


def select_checkpoints(init: str, spec: str) -> tuple[Path, list[PretrainCheckpoint]]:
    """Check --init and --checkpoints and describe the chosen checkpoints, before any fine-tuning."""
    run_dir, record = pretraining_run(init)
    available = available_steps(run_dir)
    keep_last = (record.get("training") or {}).get("keep_last")
    kept = (
        f"prefine pretrain keeps the last {keep_last} checkpoints" if keep_last else "prefine pretrain keeps only the last few checkpoints"
    )
    if not available:
        raise PrefineError(f"{run_dir} has no saved checkpoint yet; pre-train it until it saves one")
    wanted = parse_checkpoint_spec(spec)
    if wanted is None:
        wanted = list(available)
    missing = [step for step in wanted if step not in available]
    if missing:
        raise PrefineError(
            f"{run_dir} has no checkpoint for step {', '.join(map(str, missing))}; available steps: "
            f"{', '.join(map(str, available))} ({kept}; raise its --keep-last to keep more)"
        )
    accuracy = mlm_accuracy_by_step(run_dir)
    chosen = []
    for step in wanted:
        elapsed, tokens = _cost_of(available[step])
        chosen.append(PretrainCheckpoint(step, available[step], elapsed, tokens, accuracy.get(step)))
    return run_dir, chosen


# ---------------------------------------------------------------------------------------------
# table and plot


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_count(count: int | None) -> str:
    if count is None:
        return "-"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)


def _fraction_key(fraction: float) -> str:
    return f"{fraction:g}"


def _per_seed(row: dict, fraction: float) -> list[float]:
    result = next(r for r in row["results"] if r["fraction"] == fraction)
    return result.get("per_seed") or [result["value"]]


def _cell(row: dict, scratch: dict | None, fraction: float) -> str:
    """A point's mean (± spread over seeds) and, beside random weights, its paired gain and 95% interval."""
    values = _per_seed(row, fraction)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    text = f"{mean:.4f} ± {spread:.4f}"
    if scratch is None or row is scratch:
        return text
    gain = paired_gain(values, _per_seed(scratch, fraction))
    assert gain.low is not None and gain.high is not None  # two or more seeds
    return f"{text}, gain {gain.mean:+.4f} [{gain.low:+.4f}, {gain.high:+.4f}] {gain.verdict}"


def format_checkpoint_table(rows: list[dict]) -> str:
    """One row per start point (scratch first), one column per label fraction.

    With several seeds a cell reads "mean ± spread, gain +g [low, high] verdict": the gain over
    random weights paired by seed, its 95% t-interval, and "helped"/"hurt" only where it excludes zero.
    """
    if not rows:
        return ""
    metric = rows[0]["metric"]
    fractions = [result["fraction"] for result in rows[0]["results"]]
    examples = {result["fraction"]: result["examples"] for result in rows[0]["results"]}
    scratch = next((row for row in rows if row["from_scratch"]), None)
    header = (
        "| step | pre-training time | tokens seen | MLM accuracy | "
        + " | ".join(f"{metric} @ {fraction:g} ({examples[fraction]} ex.)" for fraction in fractions)
        + " |"
    )
    lines = [header, "|---:" * (4 + len(fractions)) + "|"]
    for row in rows:
        step = "scratch (0)" if row["from_scratch"] else str(row["step"])
        mlm = "-" if row["mlm_accuracy"] is None else f"{row['mlm_accuracy']:.4f}"
        values = " | ".join(_cell(row, scratch, fraction) for fraction in fractions)
        lines.append(f"| {step} | {format_duration(row['pretraining_seconds'])} | {format_count(row['tokens_seen'])} | {mlm} | {values} |")
    return "\n".join(lines)


def _half_width(values: list[float]) -> float:
    """Half the 95% t-interval of the mean of `values` (0 for one value: no interval)."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return t_quantile_975(len(values) - 1) * spread / len(values) ** 0.5


def _time_axis(rows: list[dict]) -> tuple[str, float]:
    longest = max((row["pretraining_seconds"] or 0.0) for row in rows)
    if longest >= 2 * 3600:
        return "hours", 3600.0
    if longest >= 120:
        return "minutes", 60.0
    return "seconds", 1.0


def _axis_values(rows: list[dict], key: str, scale: float = 1.0) -> list[tuple[float, dict]]:
    """(x, row) for the rows that recorded `key`; scratch sits at 0."""
    points = []
    for row in rows:
        value = 0.0 if row["from_scratch"] else row[key]
        if value is not None:
            points.append((value / scale, row))
    return points


def plot_panels(rows: list[dict]) -> list[tuple[str, float, str]]:
    """(row key, divisor, x-axis label) of each panel: time and tokens where recorded, else steps."""
    unit, scale = _time_axis(rows)
    recorded = lambda key: any(row[key] is not None for row in rows if not row["from_scratch"])  # noqa: E731
    panels = [
        (key, divisor, label)
        for key, divisor, label in (
            ("pretraining_seconds", scale, f"pre-training time ({unit})"),
            ("tokens_seen", 1.0, "pre-training tokens seen"),
        )
        if recorded(key)
    ]
    if len(panels) < 2:
        panels.append(("step", 1.0, "pre-training steps" + ("" if panels else " (this run did not record time or tokens per checkpoint)")))
    return panels


def plot_checkpoint_curve(rows: list[dict], path: Path) -> Path | None:
    """Downstream metric vs pre-training time (left) and tokens seen (right); one line per label fraction.

    Where a run did not record time or tokens per checkpoint (runs made before prefine recorded
    them), pre-training steps take the missing panel's place, so older runs still get their curve.
    None without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import EngFormatter
    except ImportError:
        print("(install matplotlib, e.g. pip install prefine[plot], for the pre-training curve plot)")
        return None
    if not rows:
        return None
    metric = rows[0]["metric"]
    panels = plot_panels(rows)
    figure = Figure(figsize=(max(5.5 * len(panels), 7.0), 4.2))
    all_axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    markers = "osD^v<>px*"
    for axes, (key, divisor, label) in zip(all_axes, panels):
        points = _axis_values(rows, key, divisor)
        for index, fraction_result in enumerate(rows[0]["results"]):
            fraction = fraction_result["fraction"]
            values = [next(r["value"] for r in row["results"] if r["fraction"] == fraction) for _, row in points]
            # Each point's 95% interval of the mean over seeds (none with one seed).
            errors = [_half_width(_per_seed(row, fraction)) for _, row in points]
            axes.errorbar(
                [x for x, _ in points],
                values,
                yerr=errors if any(errors) else None,
                capsize=3,
                marker=markers[index % len(markers)],
                label=f"{fraction * 100:g}% of labels ({fraction_result['examples']} examples)",
            )
        axes.set_xlabel(label)
        axes.grid(True, alpha=0.3)
        if key == "tokens_seen":
            axes.xaxis.set_major_formatter(EngFormatter())
    all_axes[0].set_ylabel(f"fine-tuned {metric}")
    all_axes[0].legend(title="x = 0: random weights", fontsize="small")
    seeds = len(_per_seed(rows[0], rows[0]["results"][0]["fraction"]))
    figure.suptitle(
        "How much pre-training is enough? Fine-tuned from each checkpoint"
        + (f" (mean of {seeds} seeds, bars: 95% interval)" if seeds > 1 else " (one seed: no interval)")
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure).print_png(str(path))
    return path
