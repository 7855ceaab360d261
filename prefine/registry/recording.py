"""Record a command's run for its whole lifetime: `running` at start, the outcome at the end.

Training can end four ways: it finishes, it raises, the user presses Ctrl-C, or the CLI calls
sys.exit. `recorded_run` maps each onto a final status so the registry never shows a dead run as
still running, and it always re-raises so the caller's own error handling is unchanged. Only a
SIGKILL gets past it; for that, the row carries the process's identity and a heartbeat that the
training loop refreshes through `RunHandle.heartbeat`, so readers can show the run as `died`.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prefine.registry.store import RunRecord, RunRegistry

# Heartbeats without a new checkpoint are written at most this often: the loop calls at every
# log line, and a registry shared by many runs should not see a write per second from each.
HEARTBEAT_INTERVAL_SECONDS = 30.0


@dataclass
class RunHandle:
    """What the running command sees: its id and (possibly suffixed) name, and a metrics slot."""

    record: RunRecord | None  # None: a handle that records nothing (the ranks other than 0)
    metrics: dict | None = None
    key_metric: tuple[str, float] | None = None
    registry: RunRegistry | None = None
    _last_heartbeat: float = field(default=float("-inf"), repr=False)

    @property
    def id(self) -> int:
        return self._recorded().id

    @property
    def name(self) -> str:
        return self._recorded().name

    def _recorded(self) -> RunRecord:
        if self.record is None:
            raise ValueError("this run handle records nothing (only rank 0 records the run), so it has no id or name")
        return self.record

    def heartbeat(self, step: int, checkpoint: Path | None = None) -> None:
        """The training loop's sign of life (at log, evaluation and save time); cheap to call often.

        A new checkpoint is always recorded; otherwise at most one write per HEARTBEAT_INTERVAL_SECONDS.
        A registry that cannot be written right now costs the run nothing but a warning.
        """
        now = time.monotonic()
        if self.registry is None or (checkpoint is None and now - self._last_heartbeat < HEARTBEAT_INTERVAL_SECONDS):
            return
        self._last_heartbeat = now
        try:
            self.registry.heartbeat(self.id, step, checkpoint)
        except sqlite3.Error as error:
            print(f"prefine: could not record progress of run {self.name} in {self.registry.path}: {error}", file=sys.stderr)

    def set_metrics(self, metrics: dict, key_metric: tuple[str, float] | None = None) -> None:
        """Final (or latest) metrics; stored with the run's status when it ends, however it ends."""
        self.metrics = dict(metrics)
        self.key_metric = key_metric


@contextmanager
def recorded_run(registry: RunRegistry, resume_artifact: bool = False, **start_kwargs) -> Iterator[RunHandle]:
    """Start a run (`RunRegistry.start_run` arguments) and record completed/failed/interrupted on exit.

    With `resume_artifact`, a run already recorded for the same artifact folder is reopened, so
    resuming after Ctrl-C continues one registry row rather than adding a second.
    """
    existing = registry.find_by_artifact(start_kwargs["artifact_path"]) if resume_artifact else None
    if existing is not None and existing.kind == start_kwargs.get("kind"):
        handle = RunHandle(record=registry.reopen_run(existing.id), registry=registry)
    else:
        handle = RunHandle(record=registry.start_run(**start_kwargs), registry=registry)
    try:
        yield handle
    except KeyboardInterrupt:
        _finish_quietly(registry, handle, "interrupted", "KeyboardInterrupt")
        raise
    except SystemExit as exit_request:
        # sys.exit(0) / sys.exit(None) is a normal way out of a CLI command, not a failure.
        if exit_request.code in (0, None):
            _finish_quietly(registry, handle, "completed", None)
        else:
            _finish_quietly(registry, handle, "failed", f"SystemExit: {exit_request.code}")
        raise
    except BaseException as error:
        _finish_quietly(registry, handle, "failed", f"{type(error).__name__}: {error}")
        raise
    registry.finish_run(handle.id, "completed", handle.metrics, handle.key_metric)


def _finish_quietly(registry: RunRegistry, handle: RunHandle, status: str, error: str | None) -> None:
    # The run's own exception is what the user needs to see; a registry hiccup while recording
    # it must not replace it, so it is only reported.
    try:
        registry.finish_run(handle.id, status, handle.metrics, handle.key_metric, error)
    except sqlite3.Error as registry_error:
        print(f"prefine: could not record run {handle.name} as {status} in {registry.path}: {registry_error}", file=sys.stderr)
