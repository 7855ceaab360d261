"""`prefine runs`, `runs show`, `runs compare`, `lineage` and `plot`: reading the run registry.

`add_registry_commands` mounts these on the main CLI's subparsers. Each command's `func` takes the
parsed arguments and returns an exit code; the text each prints is built by a `format_*` function
so it can be read and tested without a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.registry.plot import plot_runs
from prefine.registry.store import REGISTRY_ENV_VAR, RunRecord, RunRegistry, find_registry

MISSING_MARKER = "(missing)"
ABSENT = "-"


REGISTRY_HELP = (
    "registry file (default: $PREFINE_REGISTRY, else beside a run folder named, else ./runs/registry.sqlite, "
    "else the one registry under ./ or ./runs/*, such as the quickstart's)"
)


@dataclass
class RunsConfig:
    registry: str = option("", REGISTRY_HELP)


@dataclass
class RunsShowConfig:
    run: str = option("", "run name, id or folder", positional=True)
    registry: str = option("", REGISTRY_HELP)


@dataclass
class RunsCompareConfig:
    run_a: str = option("", "run name, id or folder", positional=True)
    run_b: str = option("", "run name, id or folder", positional=True)
    registry: str = option("", REGISTRY_HELP)


@dataclass
class LineageConfig:
    run: str = option("", "run name, id or folder", positional=True)
    descendants: bool = option(False, "show the tree of runs grown from it instead of its ancestors")
    max_depth: int = option(100, "follow at most this many parent/child links")
    registry: str = option("", REGISTRY_HELP)


@dataclass
class PlotConfig:
    runs: list[str] = option([], "run names, ids or folders", positional=True)
    metric: str = option("", "metric key in metrics.jsonl, e.g. eval/loss or eval/accuracy")
    out: str = option("", "PNG file to write (default: plot-METRIC.png in the first run's folder)")
    registry: str = option("", REGISTRY_HELP)


def add_registry_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `runs` (with `show` and `compare`), `lineage` and `plot` on the CLI's subparsers."""
    runs_parser = subparsers.add_parser("runs", help="list recorded runs; `runs show NAME`, `runs compare A B`")
    add_dataclass_arguments(runs_parser, RunsConfig)
    runs_parser.set_defaults(func=list_runs_command)
    runs_actions = runs_parser.add_subparsers(dest="runs_action", metavar="{show,compare}")

    show_parser = runs_actions.add_parser("show", help="one run's config, data, metrics, artifact and versions")
    # SUPPRESS: a flag given before `show` (`runs --registry P show X`) must not be reset.
    add_dataclass_arguments(show_parser, RunsShowConfig, unset=argparse.SUPPRESS)
    show_parser.set_defaults(func=show_run_command)

    compare_parser = runs_actions.add_parser("compare", help="config and metric differences between two runs")
    add_dataclass_arguments(compare_parser, RunsCompareConfig, unset=argparse.SUPPRESS)
    compare_parser.set_defaults(func=compare_runs_command)

    lineage_parser = subparsers.add_parser("lineage", help="a run's ancestors up to the root, or its descendants")
    add_dataclass_arguments(lineage_parser, LineageConfig)
    lineage_parser.set_defaults(func=lineage_command)

    plot_parser = subparsers.add_parser("plot", help="PNG curves of one metric over steps for several runs")
    add_dataclass_arguments(plot_parser, PlotConfig)
    plot_parser.set_defaults(func=plot_command)


def open_existing_registry(args: argparse.Namespace, references: Sequence[str] = ()) -> RunRegistry:
    """The registry a reading command should use (`find_registry`); never creates one where none was recorded.

    `references` are the runs the command names; one that is a run folder locates the registry beside it.
    """
    folders = [Path(reference) for reference in references if Path(reference).is_dir()]
    path = find_registry(getattr(args, "registry", None), folders[0] if folders else None)
    if not Path(path).is_file():
        searched = "" if getattr(args, "registry", None) or os.environ.get(REGISTRY_ENV_VAR) else " (nor in ./, ./runs/* or ./*)"
        raise PrefineError(
            f"no run registry at {path}{searched}; run from the folder that holds your runs, "
            "or pass --registry PATH (or set PREFINE_REGISTRY)"
        )
    return RunRegistry(Path(path))


def get_run(registry: RunRegistry, reference: str) -> RunRecord:
    """A run by name, id, or folder (a run folder, or a checkpoint inside one): every command names runs the same way."""
    try:
        return registry.get(reference)
    except PrefineError:
        if not Path(reference).exists():
            raise
    record = registry.find_by_artifact(Path(reference))
    if record is None:
        raise PrefineError(f"{reference} is not a run recorded in {registry.path}; `prefine runs --registry {registry.path}` lists them")
    return record


def list_runs_command(args: argparse.Namespace) -> int:
    with open_existing_registry(args) as registry:
        print(format_runs_table(registry.list_runs()))
    return 0


def show_run_command(args: argparse.Namespace) -> int:
    with open_existing_registry(args, [args.run]) as registry:
        run = get_run(registry, args.run)
        parent = registry.get(run.parent_id) if run.parent_id is not None else None
        print(format_run_details(run, parent))
    return 0


def compare_runs_command(args: argparse.Namespace) -> int:
    with open_existing_registry(args, [args.run_a, args.run_b]) as registry:
        print(format_comparison(get_run(registry, args.run_a), get_run(registry, args.run_b)))
    return 0


def lineage_command(args: argparse.Namespace) -> int:
    config = from_args(LineageConfig, args)
    with open_existing_registry(args, [config.run]) as registry:
        run = get_run(registry, config.run)
        if config.descendants:
            print(format_descendants(registry.descendants(run, max_depth=config.max_depth)))
        else:
            print(format_ancestors(registry.ancestors(run, max_depth=config.max_depth)))
    return 0


def plot_command(args: argparse.Namespace) -> int:
    config = from_args(PlotConfig, args)
    if not config.metric:
        raise PrefineError("pass --metric KEY, a key of metrics.jsonl such as eval/loss or eval/accuracy")
    with open_existing_registry(args, config.runs) as registry:
        runs = [get_run(registry, name) for name in config.runs]
    # Into the (first) run's folder unless --out says otherwise: never a stray plot.png in the current directory.
    out = Path(config.out) if config.out else runs[0].artifact_path / f"plot-{config.metric.replace('/', '-')}.png"
    written = plot_runs(runs, config.metric, out)
    print(f"wrote {written}")
    return 0


# ---- text rendering ----------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def format_key_metric(run: RunRecord) -> str:
    if run.key_metric is None:
        return ABSENT
    name, value = run.key_metric
    return f"{name}={value:.4g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ABSENT
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def format_timestamp(iso_timestamp: str) -> str:
    return datetime.fromisoformat(iso_timestamp).strftime("%Y-%m-%d %H:%M")


def format_columns(rows: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def flatten(values: dict | None, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1e-4}} -> {"optim.lr": 1e-4}, so nested configs compare key by key."""
    flat: dict[str, Any] = {}
    for key, value in (values or {}).items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def format_status(run: RunRecord) -> str:
    """The status column: `died at step 120 (step-00000100)` for a run whose process is gone."""
    if not run.died:
        return run.status
    if run.last_step is None:
        return "died"  # it never reported progress (commands whose loop sends no heartbeat)
    checkpoint = Path(run.last_checkpoint).name if run.last_checkpoint else "no checkpoint yet"
    return f"died at step {run.last_step} ({checkpoint})"


def run_label(run: RunRecord) -> str:
    """`kind name  [status]  metric=value  (missing)`: one run on one line for lineage views."""
    parts = [f"{run.kind} {run.name}", f"[{format_status(run)}]"]
    if run.key_metric is not None:
        parts.append(format_key_metric(run))
    if not run.artifact_exists:
        parts.append(MISSING_MARKER)
    return "  ".join(parts)


def format_runs_table(runs: list[RunRecord]) -> str:
    if not runs:
        return "no runs recorded yet"
    names_by_id = {run.id: run.name for run in runs}
    header = ["id", "kind", "name", "parent", "status", "key metric", "started (UTC)", "duration"]
    rows = [
        [
            str(run.id),
            run.kind,
            run.name if run.artifact_exists else f"{run.name} {MISSING_MARKER}",
            ABSENT if run.parent_id is None else names_by_id.get(run.parent_id, f"#{run.parent_id}"),
            format_status(run),
            format_key_metric(run),
            format_timestamp(run.started_at),
            format_duration(run.duration_seconds),
        ]
        for run in runs
    ]
    text = format_columns([header, *rows])
    if any(not run.artifact_exists for run in runs):
        text += f"\n{MISSING_MARKER}: the artifact folder is no longer at its recorded path"
    if any(run.died for run in runs):
        text += "\ndied: its process ended without recording an outcome (killed); continue it with --resume"
    return text


def format_run_details(run: RunRecord, parent: RunRecord | None) -> str:
    versions = f"prefine {run.prefine_version or '?'}, torch {run.torch_version or '?'}"
    fields = [
        ["kind", run.kind],
        ["status", format_status(run)],
        ["parent", ABSENT if parent is None else f"{parent.name} (id {parent.id})"],
        ["started", run.started_at],
        ["finished", run.finished_at or ABSENT],
        ["duration", format_duration(run.duration_seconds)],
        ["artifact", str(run.artifact_path) + ("" if run.artifact_exists else f" {MISSING_MARKER}")],
        ["tokenizer", run.tokenizer_hash or ABSENT],
        ["key metric", format_key_metric(run)],
        ["versions", versions],
    ]
    if run.error:
        fields.append(["error", run.error])
    if run.host is not None:
        fields.append(["process", f"pid {run.pid} on {run.host}"])
        fields.append(["heartbeat", run.heartbeat_at or ABSENT])
        fields.append(["last step", ABSENT if run.last_step is None else str(run.last_step)])
        fields.append(["checkpoint", run.last_checkpoint or ABSENT])
    sections = [f"run {run.name} (id {run.id})", _indent(format_columns(fields))]
    for title, values in (("config", run.config), ("data fingerprints", run.data_fingerprints), ("metrics", run.metrics)):
        rows = [[key, format_value(value)] for key, value in sorted(flatten(values).items())]
        sections.append(f"{title}:")
        sections.append(_indent(format_columns(rows) if rows else ABSENT))
    return "\n".join(sections)


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def format_comparison(run_a: RunRecord, run_b: RunRecord) -> str:
    """Side by side: config keys that differ, data that differs, then every metric of either run."""

    def side_by_side(flat_a: dict, flat_b: dict, only_differences: bool) -> list[list[str]]:
        rows = []
        for key in sorted(flat_a.keys() | flat_b.keys()):
            in_a, in_b = key in flat_a, key in flat_b
            if only_differences and in_a and in_b and flat_a[key] == flat_b[key]:
                continue
            rows.append([key, format_value(flat_a[key]) if in_a else ABSENT, format_value(flat_b[key]) if in_b else ABSENT])
        return rows

    data_a = {**flatten(run_a.data_fingerprints), "tokenizer": run_a.tokenizer_hash}
    data_b = {**flatten(run_b.data_fingerprints), "tokenizer": run_b.tokenizer_hash}
    sections = [
        ("config (differences)", side_by_side(flatten(run_a.config), flatten(run_b.config), only_differences=True)),
        ("data (differences)", side_by_side(data_a, data_b, only_differences=True)),
        ("metrics", side_by_side(flatten(run_a.metrics), flatten(run_b.metrics), only_differences=False)),
    ]
    header = ["", f"{run_a.kind} {run_a.name}", f"{run_b.kind} {run_b.name}"]
    rows: list[list[str]] = [["status", format_status(run_a), format_status(run_b)]]
    for title, section_rows in sections:
        rows.append([f"{title}:", "", ""])
        rows.extend([[f"  {key}", a, b] for key, a, b in section_rows] or [["  (none)", "", ""]])
    return format_columns([header, *rows])


def format_ancestors(ancestors: list[RunRecord]) -> str:
    """Root first, each run one arrow deeper than its parent."""
    root_first = list(reversed(ancestors))
    lines = [run_label(root_first[0])]
    lines += ["  " * (depth - 1) + "  -> " + run_label(run) for depth, run in enumerate(root_first[1:], start=1)]
    if root_first[0].parent_id is not None:
        lines.insert(0, f"(stopped at run id {root_first[0].parent_id}: parent links loop or exceed --max-depth)")
    return "\n".join(lines)


def format_descendants(tree: list[tuple[RunRecord, int]]) -> str:
    """A preorder (run, depth) list drawn as a tree with ├── / └── branches."""
    depths = [depth for _, depth in tree]
    last_at_depth: dict[int, bool] = {}
    lines = []
    for index, (run, depth) in enumerate(tree):
        # A run is the last of its siblings when no later run at its depth appears before the
        # walk climbs back above it.
        is_last = True
        for later_depth in depths[index + 1 :]:
            if later_depth <= depth:
                is_last = later_depth < depth
                break
        last_at_depth[depth] = is_last
        if depth == 0:
            lines.append(run_label(run))
            continue
        rails = "".join("    " if last_at_depth[level] else "│   " for level in range(1, depth))
        lines.append(rails + ("└── " if is_last else "├── ") + run_label(run))
    return "\n".join(lines)
