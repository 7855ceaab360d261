"""`prefine pretrain` checks everything before it works: one error line, nothing printed before it, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

import prefine.recipes.pretrain as pretrain_recipe
from prefine.cli import main
from prefine.errors import PrefineError
from tests.conftest import TINY_PRETRAIN_FLAGS, synthetic_documents, write_bert_text

TINY = [*TINY_PRETRAIN_FLAGS, "--max-steps", "2"]


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(20))
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "program").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00" + bytes(range(256)) * 4)
    (tmp_path / "utf16.txt").write_bytes("hello world\n".encode("utf-16"))
    (tmp_path / "reviews.tsv").write_text("id\treview\n1\tgood film\n")
    out = str(tmp_path / "run")
    return {
        "missing corpus": (["--corpus", str(tmp_path / "missing.txt"), "--out", out], "corpus file not found"),
        "empty corpus": (["--corpus", str(tmp_path / "empty.txt"), "--out", out], "holds no text"),
        "binary file": (["--corpus", str(tmp_path / "program"), "--out", out], "looks like a binary file"),
        "UTF-16 file": (["--corpus", str(tmp_path / "utf16.txt"), "--out", out], "is UTF-16 text; convert it with iconv"),
        "unknown preset": (["--corpus", str(good), "--out", out, "--preset", "nonexistent"], "unknown preset 'nonexistent'"),
        "unknown column": (
            ["--corpus", str(tmp_path / "reviews.tsv"), "--out", out, "--text-field", "body"],
            "has no field or column 'body'",
        ),
        "output under a file": (["--corpus", str(good), "--out", str(good / "run")], "is a file, not a folder"),
        "registry is a folder": (["--corpus", str(good), "--out", out, "--registry", str(tmp_path)], "is a folder; pass a file path"),
        "missing tokenizer": (["--corpus", str(good), "--out", out, "--tokenizer", str(tmp_path / "nope")], "tokenizer folder not found"),
        "bad duration": (["--corpus", str(good), "--out", out, "--max-time", "5x"], "is not a positive duration"),
        "no blocks": (["--corpus", str(good), "--out", out, "--preset", "tiny", "--num-hidden-layers", "0"], "num_hidden_layers 0 must be"),
        "dropout above 1": (["--corpus", str(good), "--out", out, "--hidden-dropout-prob", "1.5"], "hidden_dropout_prob 1.5 must be"),
    }


CASES = [
    "missing corpus",
    "empty corpus",
    "binary file",
    "UTF-16 file",
    "unknown preset",
    "unknown column",
    "output under a file",
    "registry is a folder",
    "missing tokenizer",
    "bad duration",
    "no blocks",
    "dropout above 1",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_before_any_work_and_leaves_nothing(case, tmp_path, capsys, caplog):
    arguments, expected = bad_inputs(tmp_path)[case]
    before = set(tmp_path.rglob("*"))
    # TINY goes first so each case's own --preset overrides it.
    assert main(["pretrain", *TINY, *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not caplog.records, "nothing may suggest that work started"
    assert captured.err.count("\n") == 1 and captured.err.startswith("prefine: error:") and expected in captured.err, captured.err
    assert set(tmp_path.rglob("*")) == before, "a rejected command leaves nothing behind"


def test_a_failure_after_the_tokenizer_was_trained_removes_the_new_run_folder(tmp_path, monkeypatch, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(20))

    def failing_cache(*args, **kwargs):
        raise PrefineError("the token cache failed")

    monkeypatch.setattr(pretrain_recipe, "cached_token_shards", failing_cache)
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "the token cache failed" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "no tokenizer folder may be left to block the next attempt"
