"""The registry's CLI commands, driven through a bare argparse parser as the real CLI mounts them."""

from __future__ import annotations

import argparse
import shutil
import sys

import pytest

from prefine.errors import PrefineError
from prefine.registry import add_registry_commands

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prefine")
    subparsers = parser.add_subparsers(dest="command")
    add_registry_commands(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def registry_flag(registry, lineage_tree) -> list[str]:
    return ["--registry", str(registry.path)]


def test_lineage_prints_ancestors_root_first(registry_flag, capsys):
    assert run_cli(["lineage", "ko-mini-sentiment-v2", *registry_flag]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "import minilm  [completed]",
        "  -> pretrain ko-mini  [completed]  eval/loss=2.1",
        "    -> finetune ko-mini-sentiment  [completed]  eval/accuracy=0.91",
        "      -> finetune ko-mini-sentiment-v2  [failed]",
    ]


def test_lineage_descendants_draws_the_tree(registry_flag, capsys):
    assert run_cli(["lineage", "minilm", "--descendants", *registry_flag]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "import minilm  [completed]",
        "└── pretrain ko-mini  [completed]  eval/loss=2.1",
        "    ├── finetune ko-mini-sentiment  [completed]  eval/accuracy=0.91",
        "    │   └── finetune ko-mini-sentiment-v2  [failed]",
        "    └── finetune ko-mini-qa  [running]",
    ]


def test_lineage_notes_where_a_parent_cycle_was_cut(registry, registry_flag, lineage_tree, capsys):
    registry.connection.execute("UPDATE runs SET parent_id = ? WHERE name = 'minilm'", (lineage_tree["ko-mini-qa"].id,))
    assert run_cli(["lineage", "ko-mini-qa", *registry_flag]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"(stopped at run id {lineage_tree['ko-mini-qa'].id}: parent links loop or exceed --max-depth)",
        "import minilm  [completed]",
        "  -> pretrain ko-mini  [completed]  eval/loss=2.1",
        "    -> finetune ko-mini-qa  [running]",
    ]


def test_runs_table_lists_every_run_and_flags_missing_artifacts(lineage_tree, registry_flag, capsys):
    shutil.rmtree(lineage_tree["ko-mini-qa"].artifact_path)
    assert run_cli(["runs", *registry_flag]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "kind", "name", "parent", "status", "key", "metric", "started", "(UTC)", "duration"]
    rows = [line.split() for line in lines[1:6]]
    assert [row[2] for row in rows] == ["minilm", "ko-mini", "ko-mini-sentiment", "ko-mini-qa", "ko-mini-sentiment-v2"]
    assert rows[3][3] == "(missing)" and rows[3][4] == "ko-mini"
    assert rows[1][3:6] == ["minilm", "completed", "eval/loss=2.1"]
    assert sum("(missing)" in line for line in lines[1:6]) == 1
    assert "no longer at its recorded path" in lines[-1]


def test_runs_show_prints_config_data_metrics_and_versions(lineage_tree, registry_flag, capsys):
    assert run_cli(["runs", *registry_flag, "show", "ko-mini"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run ko-mini (id {lineage_tree['ko-mini'].id})")
    for expected in (
        "parent      minilm (id 1)",
        "model.hidden_size  64",
        "optim.lr           0.0001",
        "train  sha256:ko-mini",
        "eval/mlm_accuracy  0.31",
        str(lineage_tree["ko-mini"].artifact_path),
        "prefine 0.1.0, torch ",
    ):
        assert expected in out
    # --registry is accepted after the sub-verb too.
    assert run_cli(["runs", "show", "ko-mini-sentiment-v2", *registry_flag]) == 0
    assert "error       ValueError: unknown label 'neutral'" in capsys.readouterr().out


def test_runs_compare_shows_differing_config_and_all_metrics(registry_flag, capsys):
    assert run_cli(["runs", "compare", "ko-mini", "ko-mini-sentiment", *registry_flag]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["pretrain", "ko-mini", "finetune", "ko-mini-sentiment"]
    keys = [row[0] for row in rows[1:]]
    assert keys == ["status", "config", "optim.lr", "task", "data", "train", "metrics:", "eval/accuracy", "eval/loss", "eval/mlm_accuracy"]
    by_key = {row[0]: row[1:] for row in rows}
    assert by_key["optim.lr"] == ["0.0001", "3e-05"]
    assert by_key["task"] == ["-", "sentiment"]
    assert by_key["eval/loss"] == ["2.1", "0.5"]
    assert "model.hidden_size" not in keys and "seed" not in keys  # equal config is left out


def test_unknown_run_and_missing_registry_are_user_errors(registry_flag, tmp_path, monkeypatch):
    with pytest.raises(PrefineError, match="no run named nope"):
        run_cli(["lineage", "nope", *registry_flag])
    monkeypatch.chdir(tmp_path / "runs" / "minilm")
    with pytest.raises(PrefineError, match="no run registry at runs/registry.sqlite"):
        run_cli(["runs"])


def test_reading_commands_find_the_registry_in_runs_or_from_the_environment(registry, lineage_tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the fixture registry lives at ./runs/registry.sqlite
    assert run_cli(["lineage", "ko-mini"]) == 0
    assert "pretrain ko-mini" in capsys.readouterr().out
    monkeypatch.chdir(lineage_tree["ko-mini"].artifact_path)
    monkeypatch.setenv("PREFINE_REGISTRY", str(registry.path))
    assert run_cli(["runs", "show", "ko-mini-qa"]) == 0
    assert "run ko-mini-qa" in capsys.readouterr().out


def test_plot_writes_a_png_of_each_runs_curve(registry_flag, tmp_path, capsys):
    out = tmp_path / "plots" / "eval-loss.png"
    assert run_cli(["plot", "ko-mini", "ko-mini-sentiment", "--metric", "eval/loss", "--out", str(out), *registry_flag]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote {out}" in capsys.readouterr().out


def test_plot_of_an_absent_metric_lists_the_metrics_the_run_has(registry_flag, tmp_path):
    expected = "run ko-mini has no metric 'eval/accuracy'.*it has: eval/loss, eval/mlm_accuracy, train/loss, train/lr"
    out = str(tmp_path / "p.png")
    with pytest.raises(PrefineError, match=expected):
        run_cli(["plot", "ko-mini-sentiment", "ko-mini", "--metric", "eval/accuracy", "--out", out, *registry_flag])
    assert not (tmp_path / "p.png").exists()


def test_plot_tolerates_a_truncated_last_line_but_not_a_broken_middle(registry_flag, lineage_tree, tmp_path):
    log = lineage_tree["ko-mini-sentiment"].artifact_path / "metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 15, "eval/lo', encoding="utf-8")
    assert run_cli(["plot", "ko-mini-sentiment", "--metric", "eval/loss", "--out", str(tmp_path / "a.png"), *registry_flag]) == 0
    log.write_text('{"step": 1}\nnot json\n{"step": 2}\n', encoding="utf-8")
    with pytest.raises(PrefineError, match="metrics.jsonl line 2 is not valid JSON"):
        run_cli(["plot", "ko-mini-sentiment", "--metric", "eval/loss", "--out", str(tmp_path / "b.png"), *registry_flag])


def test_plot_without_matplotlib_says_how_to_install_it(registry_flag, tmp_path, monkeypatch):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(PrefineError, match=r"pip install prefine\[plot\]"):
        run_cli(["plot", "ko-mini", "--metric", "eval/loss", "--out", str(tmp_path / "p.png"), *registry_flag])
