"""Checkpoints: bit-exact round trip, atomic saves that survive failures, pruning, disk full."""

from __future__ import annotations

import errno

import pytest
import torch

import prefine.checkpoint as checkpoint_module
from prefine.checkpoint import (
    best_checkpoint,
    latest_checkpoint,
    load_trainer_state,
    load_weights,
    save_checkpoint,
    set_pointer,
)
from prefine.errors import PrefineError


def state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "bert.embeddings.word_embeddings.weight": torch.randn(50, 8, generator=generator),
        "cls.predictions.bias": torch.randn(50, generator=generator),
        "counts": torch.arange(6, dtype=torch.int64),
        "half": torch.randn(4, generator=generator).to(torch.bfloat16),
    }


def test_round_trip_is_bit_exact(tmp_path):
    saved = state(0)
    trainer = {"step": 3, "rng": {"cpu": torch.get_rng_state()}, "position": {"epoch": 1, "offset": 64}}
    path = save_checkpoint(tmp_path, 3, saved, {"hidden_size": 8}, trainer, keep_last=2)
    loaded = load_weights(path)
    assert loaded.keys() == saved.keys()
    for name, tensor in saved.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)
    restored = load_trainer_state(path)
    assert restored["position"] == {"epoch": 1, "offset": 64}
    assert torch.equal(restored["rng"]["cpu"], trainer["rng"]["cpu"])
    assert latest_checkpoint(tmp_path) == path


def test_failed_save_leaves_previous_latest_intact(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 1, state(0), {}, {"step": 1}, keep_last=3)

    def dying_save(*args, **kwargs):
        raise KeyboardInterrupt  # a kill in the middle of writing the weights

    monkeypatch.setattr(checkpoint_module, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, state(1), {}, {"step": 2}, keep_last=3)
    assert latest_checkpoint(tmp_path) == first
    assert torch.equal(load_weights(first)["cls.predictions.bias"], state(0)["cls.predictions.bias"])
    assert not (tmp_path / "checkpoints" / "step-00000002").exists()


def test_disk_full_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 1, state(0), {}, {"step": 1}, keep_last=3)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full_disk)
    with pytest.raises(PrefineError, match="disk full.*step-00000001 is intact"):
        save_checkpoint(tmp_path, 2, state(1), {}, {"step": 2}, keep_last=3)
    assert latest_checkpoint(tmp_path) == first
    leftovers = [path.name for path in (tmp_path / "checkpoints").iterdir() if path.name.startswith(".tmp")]
    assert leftovers == []


def test_keep_last_prunes_old_checkpoints_but_never_the_best(tmp_path):
    paths = [save_checkpoint(tmp_path, step, state(step), {}, None, keep_last=2) for step in (1, 2)]
    set_pointer(tmp_path, "best", paths[0])
    for step in (3, 4, 5):
        save_checkpoint(tmp_path, step, state(step), {}, None, keep_last=2)
    remaining = sorted(path.name for path in (tmp_path / "checkpoints").glob("step-*"))
    assert remaining == ["step-00000001", "step-00000004", "step-00000005"]
    assert best_checkpoint(tmp_path) == paths[0]


def test_weights_only_checkpoint_cannot_be_resumed(tmp_path):
    path = save_checkpoint(tmp_path, 1, state(0), {}, None, keep_last=1)
    with pytest.raises(PrefineError, match="cannot be resumed"):
        load_trainer_state(path)


def test_checkpoint_weights_get_the_same_permissions_as_other_files(tmp_path):
    import os

    import torch

    from prefine.checkpoint import save_checkpoint

    previous = os.umask(0o022)
    try:
        checkpoint = save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)}, {"hidden_size": 2}, {"step": 1}, keep_last=1)
    finally:
        os.umask(previous)
    assert {path.name: path.stat().st_mode & 0o777 for path in checkpoint.iterdir()} == {
        "model.safetensors": 0o644,
        "config.json": 0o644,
        "trainer_state.pt": 0o644,
    }
