"""Checkpoints: atomic saves of weights, config and trainer state, and the run folder layout.

A run folder looks like this:

    runs/ko-mini/
      run.json               every config of the run (the single record of how it was made)
      tokenizer/             tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json
      metrics.jsonl          one JSON object per logged step or evaluation
      checkpoints/
        step-00001000/       model.safetensors, config.json, trainer_state.pt
        latest               name of the newest complete checkpoint
        best                 name of the best checkpoint by the run's chosen metric (fine-tuning)

Why the care: a kill (OOM, Ctrl-C twice, a pre-empted node) in the middle of a save must never
leave a broken latest checkpoint. Each checkpoint is written into a temporary folder, flushed
to disk, and renamed into place in one `os.rename`; only then does the `latest` pointer move,
again by an atomic rename. Older checkpoints are deleted only after the pointer has moved.
A SIGKILL can still leave a temporary folder or file behind (it skips every cleanup);
`remove_stale_temporaries` deletes those when the run is next trained. The harness in
tests/crash/ kills runs inside each of these steps (`prefine.crashpoints`) and checks all this.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from prefine.crashpoints import crash_point
from prefine.errors import PrefineError
from prefine.jsonio import read_json_object

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.pt"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def give_default_permissions(path: Path) -> None:
    """Mode 0666 (0777 for a folder) less the umask, like any file open() or folder mkdir() creates.

    safetensors writes through a private temporary file (mode 0600) and renames it, and
    tempfile.mkdtemp makes private folders, so without this they would be the only parts of a run
    or export that others sharing the folder cannot read.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        _fsync_file(temporary)
        crash_point("atomic-write")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


LOCK_FILE = ".lock"


def lock_run_dir(run_dir: Path):
    """Hold the run folder for this process: the open lock file, kept open while training.

    Two processes training one run (a `--resume` while the first is still alive) would interleave
    checkpoints and metrics; the second gets a PrefineError instead. The kernel drops the lock when
    the holder exits, however it exits, so a killed run never leaves its folder locked. (No-op
    where fcntl is missing.)
    """
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise PrefineError(f"{run_dir} is being trained by {holder}; wait for it to finish or stop it, then resume") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete what killed saves left in a run folder (temporary checkpoints, half-written pointers).

    Only the process that trains the run may call this: the folders it deletes would be another
    live writer's work in progress. Returns what it removed.
    """
    checkpoints = run_dir / CHECKPOINTS_DIR
    stale = [*run_dir.glob(".*.tmp-*"), *checkpoints.glob(".tmp-*"), *checkpoints.glob(".old-*"), *checkpoints.glob(".*.tmp-*")]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def _disk_full_message(run_dir: Path) -> str:
    previous = latest_checkpoint(run_dir)
    kept = f"the previous checkpoint {previous.name} is intact" if previous else "no earlier checkpoint exists"
    return f"disk full while saving a checkpoint in {run_dir / CHECKPOINTS_DIR}; {kept}. Free some space, then resume with --resume"


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    trainer_state: dict[str, Any] | None,
    keep_last: int,
    protected: tuple[str, ...] = (),
) -> Path:
    """Write checkpoints/step-N atomically, move `latest` to it, then prune to `keep_last`."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / checkpoint_name(step)
    temporary = checkpoints / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir()
        tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model_state.items()}
        save_file(tensors, temporary / WEIGHTS_FILE, metadata={"format": "pt", "step": str(step)})
        give_default_permissions(temporary / WEIGHTS_FILE)
        (temporary / CONFIG_FILE).write_text(json.dumps(model_config, indent=2) + "\n", encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, temporary / TRAINER_STATE_FILE)
        for written in temporary.iterdir():
            _fsync_file(written)
        crash_point("checkpoint-written")
        if final.exists():
            # Re-saving a step (resumed run stopped again at once): move the old copy aside first
            # so the rename below cannot fail half-way.
            stale = checkpoints / f".old-{final.name}-{os.getpid()}"
            os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.rename(temporary, final)
        _fsync_dir(checkpoints)
        crash_point("checkpoint-renamed")
        write_text_atomic(checkpoints / "latest", final.name + "\n")
        crash_point("checkpoint-pointed")
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise PrefineError(_disk_full_message(run_dir)) from None
        raise
    prune_checkpoints(run_dir, keep_last, protected=protected + (final.name,))
    return final


def prune_checkpoints(run_dir: Path, keep_last: int, protected: tuple[str, ...] = ()) -> None:
    checkpoints = run_dir / CHECKPOINTS_DIR
    keep = set(protected)
    best = read_pointer(run_dir, "best")
    if best is not None:
        keep.add(best.name)
    steps = sorted(path for path in checkpoints.glob("step-*") if path.is_dir())
    for old in steps[: max(len(steps) - max(keep_last, 1), 0)]:
        if old.name not in keep:
            # Renamed first, so a kill during the deletion leaves no half checkpoint under a step name.
            doomed = checkpoints / f".old-{old.name}-{os.getpid()}"
            os.rename(old, doomed)
            crash_point("checkpoint-pruning")
            shutil.rmtree(doomed, ignore_errors=True)


def read_pointer(run_dir: Path, name: str) -> Path | None:
    pointer = run_dir / CHECKPOINTS_DIR / name
    if not pointer.exists():
        return None
    target = run_dir / CHECKPOINTS_DIR / pointer.read_text(encoding="utf-8").strip()
    return target if (target / WEIGHTS_FILE).exists() else None


def set_pointer(run_dir: Path, name: str, checkpoint: Path) -> None:
    write_text_atomic(run_dir / CHECKPOINTS_DIR / name, checkpoint.name + "\n")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint; falls back to scanning if the pointer is missing."""
    pointed = read_pointer(run_dir, "latest")
    if pointed is not None:
        return pointed
    complete = sorted(path for path in (run_dir / CHECKPOINTS_DIR).glob("step-*") if (path / WEIGHTS_FILE).exists())
    return complete[-1] if complete else None


def best_checkpoint(run_dir: Path) -> Path | None:
    return read_pointer(run_dir, "best")


def load_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    path = checkpoint / WEIGHTS_FILE
    if not path.exists():
        raise PrefineError(f"{checkpoint} has no {WEIGHTS_FILE}; point at a checkpoint folder prefine wrote")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise PrefineError(f"{path} is unreadable ({error}); use an earlier checkpoint from {checkpoint.parent}") from None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / TRAINER_STATE_FILE
    if not path.exists():
        raise PrefineError(
            f"{checkpoint} holds weights only (no {TRAINER_STATE_FILE}), so it cannot be resumed; start a new run with --init"
        )
    # weights_only: the state holds tensors, numbers and strings; never unpickle arbitrary objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model_config(checkpoint: Path) -> dict[str, Any]:
    return read_json_object(
        checkpoint / CONFIG_FILE,
        fix="use another checkpoint",
        missing=f"{checkpoint} has no {CONFIG_FILE}; point at a checkpoint folder prefine wrote",
    )


def read_run(run_dir: Path) -> dict[str, Any]:
    return read_json_object(
        run_dir / RUN_FILE,
        fix="restore it or start a new run",
        missing=f"{run_dir} is not a prefine run (no {RUN_FILE}); pass the folder given as --out",
    )


def write_run(run_dir: Path, record: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / RUN_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).exists()


def model_checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint a run hands on to the next stage: its best if it chose one, else its latest."""
    checkpoint = best_checkpoint(run_dir) or latest_checkpoint(run_dir)
    if checkpoint is None:
        raise PrefineError(f"{run_dir} has no complete checkpoint yet; train it (or resume it) until it saves one")
    return checkpoint
