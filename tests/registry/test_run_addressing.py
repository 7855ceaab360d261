"""One way to name a run everywhere: folder, name or id, with the registry found the same way by every command."""

from __future__ import annotations

import pytest

from prefine.cli import main
from prefine.errors import PrefineError
from prefine.registry import RunRegistry
from prefine.registry.store import find_registry
from tests.conftest import synthetic_documents, write_bert_text
from tests.registry.test_registry_commands import run_cli


def test_lineage_and_runs_show_accept_a_run_folder_and_find_the_registry_beside_it(registry, lineage_tree, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli(["lineage", str(lineage_tree["ko-mini-sentiment"].artifact_path)]) == 0
    assert "finetune ko-mini-sentiment" in capsys.readouterr().out
    assert run_cli(["runs", "show", str(lineage_tree["ko-mini"].artifact_path)]) == 0
    assert capsys.readouterr().out.startswith("run ko-mini ")


def test_plot_writes_into_the_run_folder_not_the_current_directory(registry, lineage_tree, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert run_cli(["plot", "ko-mini", "--metric", "eval/loss", "--registry", str(registry.path)]) == 0
    expected = lineage_tree["ko-mini"].artifact_path / "plot-eval-loss.png"
    assert expected.is_file() and str(expected) in capsys.readouterr().out
    assert list(cwd.iterdir()) == []


def test_a_registry_inside_a_quickstart_folder_is_found_and_several_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "quickstart").mkdir(parents=True)
    RunRegistry(tmp_path / "runs" / "quickstart" / "registry.sqlite").close()
    assert find_registry().resolve() == (tmp_path / "runs" / "quickstart" / "registry.sqlite")
    (tmp_path / "other").mkdir()
    RunRegistry(tmp_path / "other" / "registry.sqlite").close()
    with pytest.raises(PrefineError, match="several run registries here .*choose one with --registry"):
        find_registry()
    assert find_registry(tmp_path / "other" / "registry.sqlite") == tmp_path / "other" / "registry.sqlite"


def test_fill_mask_takes_a_registry_name_like_lineage_does(tmp_path, monkeypatch, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(30))
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(corpus),
                "--out",
                "runs/demo/pretrain",
                "--registry",
                "runs/demo/registry.sqlite",
                "--name",
                "demo-pretrain",
                "--preset",
                "tiny",
                "--vocab-size",
                "300",
                "--min-frequency",
                "1",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--num-threads",
                "1",
                "--no-progress",
                "--max-steps",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["fill-mask", "demo-pretrain", "the cat sees the [MASK] every morning", "--top-k", "2"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] 1:")
    assert main(["lineage", "demo-pretrain"]) == 0 and "pretrain demo-pretrain" in capsys.readouterr().out
    assert main(["fill-mask", "no-such-run", "a [MASK]"]) == 2
    assert "neither a folder nor a run recorded in runs/demo/registry.sqlite" in capsys.readouterr().err
