"""Published tables are rendered from results files: they cannot drift from the data, and a stale one fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render_results", ROOT / "scripts" / "render_results.py")
assert _spec is not None and _spec.loader is not None, "scripts/render_results.py is a Python file"
render_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_results)

MACHINE = {"cpu": "Test CPU", "cores": 2, "threads": 2, "system": "Linux", "python": "3.11", "torch": "2.13.0"}


def quickstart_results(gain: float) -> dict:
    row = {
        "fraction": 1.0,
        "examples": 1368,
        "metric": "accuracy",
        "pretrained": 0.80 + gain,
        "pretrained_std": 0.01,
        "scratch": 0.80,
        "scratch_std": 0.02,
        "gain": gain,
        "gain_low": gain - 0.03,
        "gain_high": gain + 0.03,
        "verdict": "helped" if gain > 0.03 else "no clear difference",
        "seeds": [42, 43, 44],
        "interval": "95% Student t over seeds, paired",
        "selected_on": "a dev split of 0.1 of /tmp/x/task/train.jsonl (152 examples, seed 0, stratified by label; 1368 left to train on)",
        "reported_on": "/tmp/x/task/test.jsonl",
    }
    return {
        "kind": "quickstart",
        "command": "prefine quickstart",
        "machine": MACHINE,
        "wall_seconds": 541.0,
        "pretraining": {"preset": "tiny", "budget": "5m", "steps": 1800, "mlm_accuracy": 0.31},
        "finetune_steps": 300,
        "comparison": [row],
    }


def test_a_block_is_rendered_from_its_results_file_and_follows_it(tmp_path):
    (tmp_path / "qs.json").write_text(json.dumps(quickstart_results(0.052)))
    page = "intro\n<!-- results:qs -->\nhand-edited 99.9\n<!-- /results:qs -->\nafter\n"
    rendered = render_results.render_text(page, ROOT / "README.md", results_dir=tmp_path)
    assert (
        "hand-edited" not in rendered
        and rendered.startswith("intro\n<!-- results:qs -->\n")
        and rendered.endswith("<!-- /results:qs -->\nafter\n")
    )
    assert "| 1368 | 85.2 ± 1.0 | 80.0 ± 2.0 | +5.2 | +2.2 to +8.2 | helped |" in rendered
    assert "seeds 42, 43, 44" in rendered and "9 min 1 s on Test CPU, 2 cores, 2 threads" in rendered
    assert "a dev split of 0.1 of train.jsonl (152 examples" in rendered and "Command: `prefine quickstart`" in rendered
    assert render_results.render_text(rendered, ROOT / "README.md", results_dir=tmp_path) == rendered  # idempotent
    (tmp_path / "qs.json").write_text(json.dumps(quickstart_results(0.01)))
    changed = render_results.render_text(rendered, ROOT / "README.md", results_dir=tmp_path)
    assert "| +1.0 | -2.0 to +4.0 | no clear difference |" in changed


def test_a_block_without_its_results_file_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="has no results file"):
        render_results.render_text("<!-- results:missing -->\n<!-- /results:missing -->\n", ROOT / "README.md", results_dir=tmp_path)


def test_every_published_table_matches_its_results_file():
    assert render_results.main(["--check"]) == 0


def benchmark_results(examples_per_second: str) -> dict:
    return {
        "kind": "table",
        "benchmark": "finetune_throughput",
        "command": "python benchmarks/finetune_throughput.py --steps 20",
        "commit": "abc1234",
        "date": "2026-12-07",
        "machine": MACHINE,
        "conditions": "Batch 32, 20 timed steps",
        "header": ["model", "side", "examples/s"],
        "rows": [["mini", "prefine", examples_per_second], ["mini", "transformers grouped-sdpa", "140"]],
        "more_tables": [{"conditions": "Whole commands", "header": ["command", "seconds"], "rows": [["prefine predict", "4.4"]]}],
        "headline": {"anchor": "transformers grouped-sdpa", "ratio": 2.5, "text": "2.50x the examples/s of transformers grouped-sdpa"},
        "record": {},
    }


def test_a_benchmark_table_and_its_headline_are_rendered_from_what_the_run_printed(tmp_path):
    (tmp_path / "ft.json").write_text(json.dumps(benchmark_results("350")))
    page = "<!-- results:ft -->\n<!-- /results:ft -->\n- Fine-tuning: <!-- results:ft:headline -->\nold\n<!-- /results:ft:headline -->\n"
    rendered = render_results.render_text(page, ROOT / "benchmarks" / "README.md", results_dir=tmp_path)
    assert "Batch 32, 20 timed steps\n\n| model | side | examples/s |\n|---|---|---|\n| mini | prefine | 350 |" in rendered
    assert "Whole commands\n\n| command | seconds |\n|---|---|\n| prefine predict | 4.4 |" in rendered
    assert "Command: `python benchmarks/finetune_throughput.py --steps 20`; Test CPU, 2 cores, 2 threads" in rendered
    assert "commit abc1234, 2026-12-07" in rendered
    headline = rendered.split("<!-- results:ft:headline -->\n")[1]
    assert headline.startswith("2.50x the examples/s of transformers grouped-sdpa (`python benchmarks/finetune_throughput.py")
    assert "old" not in rendered
    assert render_results.render_text(rendered, ROOT / "benchmarks" / "README.md", results_dir=tmp_path) == rendered
    (tmp_path / "ft.json").write_text(json.dumps(benchmark_results("360")))
    assert "| mini | prefine | 360 |" in render_results.render_text(rendered, ROOT / "benchmarks" / "README.md", results_dir=tmp_path)


def test_a_headline_block_on_a_results_file_without_one_is_an_error(tmp_path):
    results = benchmark_results("350")
    results["headline"] = None
    (tmp_path / "ft.json").write_text(json.dumps(results))
    with pytest.raises(SystemExit, match="no headline"):
        render_results.render_text(
            "<!-- results:ft:headline -->\n<!-- /results:ft:headline -->\n", ROOT / "README.md", results_dir=tmp_path
        )


def test_an_archived_table_is_rendered_from_the_archive_subfolder(tmp_path):
    archived = {
        "kind": "table",
        "command": "python benchmarks/pretrain_throughput.py --presets mini",
        "commit": "abc1234",
        "date": "2026-11-30",
        "machine": "2-core AMD EPYC (AVX-512), 23 GB, idle",
        "conditions": "Batch 32, 10 timed steps",
        "header": ["model", "real tokens/s"],
        "rows": [["mini", "1,234"]],
        "archived": "Measured before issue 33; re-run with `git checkout abc1234` and the command.",
    }
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "old-run.json").write_text(json.dumps(archived))
    page = "<!-- results:archive/old-run -->\n<!-- /results:archive/old-run -->\n"
    rendered = render_results.render_text(page, ROOT / "docs" / "electra.md", results_dir=tmp_path)
    table = "Batch 32, 10 timed steps\n\n| model | real tokens/s |\n|---|---|\n| mini | 1,234 |"
    assert rendered.startswith("<!-- results:archive/old-run -->\n" + table)
    assert rendered.endswith("<!-- /results:archive/old-run -->\n")
    assert "2-core AMD EPYC (AVX-512), 23 GB, idle; commit abc1234, 2026-11-30" in rendered
    assert "results file: [" in rendered and "archive/old-run.json" in rendered
    assert rendered.rstrip().splitlines()[-2].endswith("Measured before issue 33; re-run with `git checkout abc1234` and the command.")
    (tmp_path / "archive" / "old-run.json").unlink()
    (tmp_path / "old-run.json").write_text(json.dumps(archived))  # the same name outside the subfolder is not the archived file
    with pytest.raises(SystemExit, match="has no results file"):
        render_results.render_text(page, ROOT / "docs" / "electra.md", results_dir=tmp_path)


def _table(rows: list[list[str]], header: list[str]) -> dict:
    return {"kind": "table", "header": header, "rows": rows, "command": "python benchmarks/x.py", "date": "2026-12-07", "machine": MACHINE}


def test_the_speed_table_takes_each_ratio_against_the_fastest_anchor_its_run_measured(tmp_path):
    header = ["model", "side", "examples/s", "peak RSS MB"]
    rows = [["mini", "prefine", "300", "400"], ["mini", "slow anchor", "100", "900"], ["mini", "fast anchor", "1,200", "500"]]
    (tmp_path / "ft.json").write_text(json.dumps(_table(rows, header)))
    speed = {
        "kind": "speed",
        "note": "Ratios against the fastest anchor.",
        "rows": [
            {
                "workload": "Fine-tuning",
                "results": "ft",
                "column": "examples/s",
                "prefine": ["mini", "prefine"],
                "anchors": [["mini", "slow anchor"], ["mini", "fast anchor"]],
                "target": 2.0,
            },
            {
                "workload": "Memory",
                "results": "ft",
                "column": "peak RSS MB",
                "lower_is_better": True,
                "prefine": ["mini", "prefine"],
                "anchors": [["mini", "slow anchor"], ["mini", "fast anchor"]],
                "anchor_note": "a note",
            },
        ],
    }
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    page = "<!-- results:speed -->\n<!-- /results:speed -->\n"
    rendered = render_results.render_text(page, ROOT / "README.md", results_dir=tmp_path)
    assert "| Fine-tuning (examples/s) | 300 | fast anchor | 1,200 | **0.25x** | 2.0x (missed) |" in rendered
    # Lower is better: the anchor using least memory is the strongest, and the ratio is anchor / prefine.
    assert "| Memory (peak RSS MB, lower is better) | 400 | fast anchor [1] | 500 | **1.25x** | - |" in rendered
    assert "[1] a note" in rendered
    rows[2][2] = "50"  # the fast anchor got slow: the other one is now the strongest
    (tmp_path / "ft.json").write_text(json.dumps(_table(rows, header)))
    assert "| 300 | slow anchor | 100 | **3.00x** | 2.0x (met) |" in render_results.render_text(
        rendered, ROOT / "README.md", results_dir=tmp_path
    )
    speed["rows"][0]["anchors"] = [["mini", "gone"]]
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    with pytest.raises(SystemExit, match="no row"):
        render_results.render_text(page, ROOT / "README.md", results_dir=tmp_path)


def test_a_speed_row_with_several_prefine_paths_takes_the_fastest_and_names_it(tmp_path):
    header = ["model", "side", "examples/s"]
    rows = [["mini", "prefine torch", "300"], ["mini", "prefine onnx", "450"], ["mini", "anchor", "400"]]
    (tmp_path / "inf.json").write_text(json.dumps(_table(rows, header)))
    row = {"workload": "Inference", "results": "inf", "column": "examples/s", "anchors": [["mini", "anchor"]], "target": 1.0}
    row["prefine_paths"] = {"--backend torch": ["mini", "prefine torch"], "--backend onnx": ["mini", "prefine onnx"]}
    (tmp_path / "speed.json").write_text(json.dumps({"kind": "speed", "note": "n", "rows": [row]}))
    page = "<!-- results:speed -->\n<!-- /results:speed -->\n"
    rendered = render_results.render_text(page, ROOT / "README.md", results_dir=tmp_path)
    assert "| Inference (examples/s) | 450 (--backend onnx) | anchor | 400 | **1.12x** | 1.0x (met) |" in rendered
    rows[1][2] = "200"  # the onnx path got slower than the torch one: torch is prefine's fastest now
    (tmp_path / "inf.json").write_text(json.dumps(_table(rows, header)))
    rendered = render_results.render_text(page, ROOT / "README.md", results_dir=tmp_path)
    assert "| Inference (examples/s) | 300 (--backend torch) | anchor | 400 | **0.75x** | 1.0x (missed) |" in rendered
