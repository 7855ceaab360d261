"""Render the results tables in README.md and docs/ from the JSON files the measuring commands wrote.

A published table is only as good as its link to the run behind it. Every table this script
owns sits between two marker lines in a markdown file:

    <!-- results:NAME -->
    ...generated...
    <!-- /results:NAME -->

and is rebuilt from benchmarks/results/NAME.json, which the command that measured it wrote (the
quickstart's results.json, a benchmark's --results file). The rendered block names the command,
the machine and the results file, so a reader can re-run it; the tests run `--check`, so a table
edited by hand or a results file changed without re-rendering fails CI.

    python scripts/render_results.py          # rewrite every block
    python scripts/render_results.py --check  # exit 1 if any block is stale or has no results file
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
# NAME is the results file's path under benchmarks/results without .json (`archive/NAME` for tables kept from
# before issue 33); an optional :VIEW renders part of it (`headline`: one sentence for the README).
BLOCK = re.compile(
    r"(<!-- results:(?P<name>[\w.-]+(?:/[\w.-]+)*)(?::(?P<view>\w+))? -->\n)(?P<body>.*?)(<!-- /results:(?P=name)(?::(?P=view))? -->)",
    re.DOTALL,
)


def markdown_files(root: Path = ROOT) -> list[Path]:
    return sorted([root / "README.md", *(root / "docs").glob("*.md"), root / "benchmarks" / "README.md"])


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}"


def _mean_spread(mean: float, spread: float) -> str:
    return f"{mean * 100:.1f} ± {spread * 100:.1f}"


def _machine(machine: dict) -> str:
    return f"{machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, torch {machine['torch']}"


def _interval(row: dict) -> str:
    if row.get("gain_low") is None:
        return "-"
    return f"{_points(row['gain_low'])} to {_points(row['gain_high'])}"


def render_quickstart(results: dict, source: str) -> str:
    rows = results["comparison"]
    lines = [
        "| labelled examples | pre-trained accuracy % | random init accuracy % | gain (points) | 95% interval | verdict |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['examples']} | {_mean_spread(row['pretrained'], row['pretrained_std'])} "
            f"| {_mean_spread(row['scratch'], row['scratch_std'])} | {_points(row['gain'])} | {_interval(row)} | {row['verdict']} |"
        )
    pretraining = results["pretraining"]
    minutes, seconds = divmod(int(results["wall_seconds"]), 60)
    seeds = ", ".join(str(seed) for seed in rows[0]["seeds"]) if rows else ""
    lines += [
        "",
        f"Mean ± standard deviation over fine-tuning seeds {seeds}; the interval is {rows[0]['interval'] if rows else ''}. "
        f"A {pretraining['preset']} pre-trained for {pretraining['budget']} ({pretraining['steps']} steps, held-out MLM accuracy "
        f"{pretraining['mlm_accuracy'] * 100:.1f}%), {_finetune_length(results)} per model; checkpoints chosen on "
        f"{_selection(rows)}, scores on the {rows[0]['reported_on'].rsplit('/', 1)[-1] if rows else ''} test docstrings. "
        f"Whole quickstart: {minutes} min {seconds} s on {_machine(results['machine'])}.",
        f"Command: `{results['command']}`; results file: [{source}]({source}).",
    ]
    return "\n".join(lines)


def _finetune_length(results: dict) -> str:
    cap = results.get("finetune_time")
    steps = f"{results['finetune_steps']} fine-tuning steps"
    return f"{steps} or {cap} of fine-tuning, whichever ends first," if cap else steps


def _selection(rows: list[dict]) -> str:
    how = rows[0]["selected_on"] if rows else ""
    # Paths inside a temporary run folder mean nothing to a reader; the split's description stays.
    return re.sub(r" of \S+/([^/\s]+) \(", r" of \1 (", how)


def _model(row: dict) -> str:
    """The model a grid row pre-trained: named, or what --preset auto / an automatic vocabulary chose."""
    preset = row["preset"] if row["preset"] != "auto" else f"auto: {row['chosen_preset']}"
    vocabulary = f"{row['vocab_size']:,}" if row["vocab_size"] != "auto" else f"auto: {row['model_vocab_size']:,}"
    return f"{preset}, vocabulary {vocabulary}"


def render_objectives(results: dict, source: str) -> str:
    rows = results["results"]
    if rows and "vocab_size" in rows[0]:
        # Grids over model size and vocabulary (issue 37) name both, and each setup's own score.
        lines = [
            "| setup (score) | model | variant | pre-trained % | random init % "
            "| gain (points) | 95% interval | verdict | MLM acc | tokens/s | steps |",
            "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {row['setup']} ({row['metric'].replace('_', ' ')}) "
                f"| {_model(row)} | {row['variant']} "
                f"| {_mean_spread(row['pretrained_mean'], row['pretrained_std'])} "
                f"| {_mean_spread(row['scratch_mean'], row['scratch_std'])} "
                f"| {_points(row['gain'])} | {_interval(row)} | {row['verdict']} "
                f"| {row['mlm_accuracy'] * 100:.1f}% | {row['tokens_per_second']:,.0f} | {row['steps']} |"
            )
    else:
        lines = [
            "| setup | variant | pre-trained acc % | random init acc % "
            "| gain (points) | 95% interval | verdict | MLM acc | tokens/s | steps |",
            "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        for row in rows:
            lines.append(
                f"| {row['setup']} | {row['variant']} | {_mean_spread(row['pretrained_mean'], row['pretrained_std'])} "
                f"| {_mean_spread(row['scratch_mean'], row['scratch_std'])} | {_points(row['gain'])} | {_interval(row)} | {row['verdict']} "
                f"| {row['mlm_accuracy'] * 100:.1f}% | {row['tokens_per_second']:,.0f} | {row['steps']} |"
            )
    lines += [
        "",
        (
            f"Pre-training budget {results['budget']} per model and variant; "
            if "vocab_sizes" in results
            else f"Pre-training budget {results['budget']} per variant, preset {results['preset']}; "
        )
        + f"{results['seeds']} fine-tuning seeds of at least {results['min_finetune_steps']} steps; "
        f"{results.get('selection', 'checkpoints chosen on a dev split of each training set, scores on its held-out test set')}; "
        f"95% Student t interval over the paired seeds. Machine: {_machine(results['machine'])}.",
        f"Command: `{results['command']}`"
        + (f" (commit {results['commit']}, {results['date']})" if results.get("commit") else "")
        + f"; results file: [{source}]({source}).",
    ]
    if results.get("provenance"):
        lines.append(results["provenance"])
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|", *("| " + " | ".join(row) + " |" for row in rows)]


def _provenance(results: dict, source: str) -> str:
    """Command, machine, code and date of a benchmark's results file: what a reader needs to re-run it."""
    commit = results.get("commit", "unknown")
    code = f"commit {commit}" if "+" not in commit else f"commit {commit.split('+')[0]} with uncommitted changes"
    archived = results.get("archived")
    line = (
        f"Command: `{results['command']}`; {_machine(results['machine']) if isinstance(results['machine'], dict) else results['machine']}; "
        f"{code}, {results['date']}; results file: [{source}]({source})."
    )
    if archived:
        # Older tables kept for the record: their code is what `git checkout COMMIT` gives back.
        line += f" {archived}"
    return line


def render_table(results: dict, source: str) -> str:
    """A benchmark's printed tables exactly as its run printed them, with the conditions line above each."""
    lines: list[str] = []
    for table in [results, *results.get("more_tables", [])]:
        if lines:
            lines.append("")
        if table.get("conditions"):
            lines += [table["conditions"], ""]
        lines += _markdown_table(table["header"], table["rows"])
    for note in results.get("notes", []):
        lines += ["", note]
    if results.get("headline"):
        lines += ["", f"Against the fastest anchor this run measured: {results['headline']['text']}."]
    lines += ["", _provenance(results, source)]
    return "\n".join(lines)


def render_headline(results: dict, source: str) -> str:
    """One sentence: prefine against the strongest anchor the benchmark measured, with its command and file."""
    headline = results.get("headline")
    if not headline:
        raise SystemExit(f"{source}: no headline to render; only benchmarks that compare against an anchor have one")
    return f"{headline['text']} (`{results['command']}`, {_machine(results['machine'])}, {results['date']}; [results]({source}))."


def _cell_number(text: str) -> float:
    """The number in a printed table cell ("7,856", "3.85 MB/s", "**219**")."""
    match = re.search(r"[\d,]*\.?\d+", text.replace("*", ""))
    if match is None:
        raise SystemExit(f"no number in table cell {text!r}")
    return float(match.group(0).replace(",", ""))


def _find_row(results: dict, column: str, key: list[str], source: str) -> str:
    """The cell under `column` of the row whose first cells are `key`, in any of a results file's tables."""
    for table in [results, *results.get("more_tables", [])]:
        if column not in table["header"]:
            continue
        index = table["header"].index(column)
        for row in table["rows"]:
            if row[: len(key)] == key:
                return row[index]
    raise SystemExit(f"{source}: no row {key} with a column {column!r}; the speed table's row definition is out of date")


def render_speed(results: dict, source: str) -> str:
    """One row per workload: prefine's ratio against the fastest anchor that workload's own results file measured.

    The workloads' results files sit beside the speed table's own (render_block says where). A row
    whose run timed several of prefine's paths (its --backend options) names them in "prefine_paths"
    ({path name: row key}); the fastest is prefine's cell, named beside the number.
    """
    results_dir = Path(results["directory"])
    lines = [
        "| workload | prefine | strongest anchor measured | anchor | prefine / anchor | target | measured |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    notes = []
    for row in results["rows"]:
        name = row["results"]
        measured = json.loads((results_dir / f"{name}.json").read_text(encoding="utf-8"))
        lower_is_better = row.get("lower_is_better", False)
        paths = row.get("prefine_paths") or {"": row["prefine"]}
        candidates = [(_cell_number(_find_row(measured, row["column"], key, name)), path) for path, key in paths.items()]
        ours, our_path = min(candidates) if lower_is_better else max(candidates)
        anchor_column = row.get("anchor_column", row["column"])
        anchors = [(_cell_number(_find_row(measured, anchor_column, key, name)), key) for key in row["anchors"]]
        value, key = min(anchors) if lower_is_better else max(anchors)
        ratio = value / ours if lower_is_better else ours / value
        anchor_name = row.get("anchor_name", key[-1])
        if row.get("anchor_note"):
            if row["anchor_note"] not in notes:
                notes.append(row["anchor_note"])
            anchor_name += f" [{notes.index(row['anchor_note']) + 1}]"
        unit = row.get("unit", row["column"]) + (", lower is better" if lower_is_better else "")
        if "target" not in row:
            target = "-"
        elif row.get("target_anchor_missing"):
            target = f"{row['target']:.1f}x against another anchor"
        else:
            target = f"{row['target']:.1f}x" + (" (met)" if ratio >= row["target"] else " (missed)")
        link = Path(source).parent / f"{name}.json"
        path_note = f" ({our_path})" if our_path else ""
        lines.append(
            f"| {row['workload']} ({unit}) | {ours:,.4g}{path_note} | {anchor_name} | {value:,.4g} | **{ratio:.2f}x** | {target} "
            f"| {measured['date']}, [results]({link.as_posix()}) |"
        )
    machines = sorted({_machine(json.loads((results_dir / f"{row['results']}.json").read_text())["machine"]) for row in results["rows"]})
    lines += ["", results["note"], ""]
    lines += [f"[{number}] {note}" for number, note in enumerate(notes, 1)]
    lines += ["", f"Machine{'s' if len(machines) > 1 else ''}: {'; '.join(machines)}. Each row's command is in its results file."]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[dict, str], str]] = {
    "quickstart": render_quickstart,
    "objectives": render_objectives,
    "table": render_table,
    "speed": render_speed,
}
VIEWS: dict[str, Callable[[dict, str], str]] = {"headline": render_headline}


def render_block(name: str, markdown_file: Path, results_dir: Path = RESULTS_DIR, view: str | None = None) -> str:
    path = results_dir / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{markdown_file}: block '{name}' has no results file {path}; run the command that writes it, or remove the block")
    results = json.loads(path.read_text(encoding="utf-8"))
    results["directory"] = str(path.parent)  # for a table that reads its neighbours (speed)
    kind = results.get("kind")
    if kind not in RENDERERS:
        raise SystemExit(f"{path}: kind {kind!r} has no renderer; add one to RENDERERS ({', '.join(RENDERERS)})")
    if view is not None and view not in VIEWS:
        raise SystemExit(f"{markdown_file}: block '{name}:{view}' names no view; choose from {', '.join(VIEWS)}")
    # The link is relative to the page, so it works on GitHub and in a checkout alike.
    if markdown_file.is_relative_to(ROOT) and path.is_relative_to(ROOT):
        link = Path(*([".."] * len(markdown_file.parent.relative_to(ROOT).parts))) / path.relative_to(ROOT)
    else:
        link = path
    renderer = VIEWS[view] if view is not None else RENDERERS[kind]
    return renderer(results, link.as_posix()) + "\n"


def render_text(text: str, markdown_file: Path, results_dir: Path = RESULTS_DIR) -> str:
    def rendered(match: re.Match) -> str:
        body = render_block(match.group("name"), markdown_file, results_dir, match.group("view"))
        return match.group(1) + body + match.group(5)

    return BLOCK.sub(rendered, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any block differs from its results file")
    args = parser.parse_args(argv)
    stale = []
    for path in markdown_files():
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        rendered = render_text(text, path)
        if rendered != text:
            stale.append(path)
            if not args.check:
                path.write_text(rendered, encoding="utf-8")
    if args.check and stale:
        print(
            f"stale results tables in {', '.join(str(path.relative_to(ROOT)) for path in stale)}; run python scripts/render_results.py",
            file=sys.stderr,
        )
        return 1
    print(("stale: " if args.check else "rendered: ") + (", ".join(str(path.relative_to(ROOT)) for path in stale) or "nothing to change"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
