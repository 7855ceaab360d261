"""A full disk in the middle of a checkpoint write: the previous checkpoint survives, the user gets one line."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import prefine.checkpoint as checkpoint_module
from prefine.cli import main
from prefine.registry import RunRegistry
from tests.conftest import TINY_PRETRAIN_FLAGS, synthetic_documents, write_bert_text

TINY = [*TINY_PRETRAIN_FLAGS, "--max-steps", "6", "--save-every", "3", "--eval-every", "3"]


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_says_so_in_one_line(tmp_path: Path, monkeypatch, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    run = tmp_path / "run"
    real_save_file = checkpoint_module.save_file
    saves = []

    def save_file_until_the_disk_fills(tensors, path, metadata=None):
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"\0" * 100)  # part of the file made it to disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save_file(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file_until_the_disk_fills)
    code = main(["pretrain", "--corpus", str(corpus), "--out", str(run), "--registry", str(tmp_path / "registry.sqlite"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("prefine:")]
    assert error_lines == [
        f"prefine: error: disk full while saving a checkpoint in {run / 'checkpoints'}; the previous checkpoint step-00000003 "
        "is intact. Free some space, then resume with --resume"
    ]
    assert "Traceback" not in err
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000003"
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["latest", "step-00000003"], "no temporary left"
    checkpoint_module.load_weights(run / "checkpoints" / "step-00000003")
    with RunRegistry(tmp_path / "registry.sqlite") as registry:
        assert registry.get("run").status == "failed" and "disk full" in registry.get("run").error

    monkeypatch.setattr(checkpoint_module, "save_file", real_save_file)  # space freed
    assert main(["pretrain", "--resume", str(run), "--registry", str(tmp_path / "registry.sqlite")]) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    with RunRegistry(tmp_path / "registry.sqlite") as registry:
        assert [(r.name, r.status) for r in registry.list_runs()] == [("run", "completed")]
