"""Liveness: a run's process identity and heartbeat, `died` for runs killed without a word, one row across resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefine.registry import RunRegistry, recorded_run
from prefine.registry.commands import format_run_details, format_runs_table, format_status
from prefine.registry.recording import RunHandle
from prefine.registry.store import process_start_time, this_host


def start(registry: RunRegistry, tmp_path: Path, name: str = "ko-mini"):
    return registry.start_run(
        name=name, kind="pretrain", config={}, data_fingerprints=None, tokenizer_hash=None, artifact_path=tmp_path / name
    )


def record_in_a_process_that_is_then_killed(registry_path: Path, artifact: Path) -> None:
    script = (
        "import os, signal\nfrom pathlib import Path\nfrom prefine.registry import RunRegistry\n"
        f"registry = RunRegistry(Path({str(registry_path)!r}))\n"
        "run = registry.start_run(name='killed', kind='pretrain', config={}, data_fingerprints=None, tokenizer_hash=None, "
        f"artifact_path=Path({str(artifact)!r}))\n"
        f"registry.heartbeat(run.id, 120, Path({str(artifact / 'checkpoints' / 'step-00000100')!r}))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == -9


def test_a_run_whose_process_was_killed_shows_as_died_with_its_last_step_and_checkpoint(registry, tmp_path):
    record_in_a_process_that_is_then_killed(registry.path, tmp_path / "killed")
    run = registry.get("killed")
    assert run.status == "running", "nobody could record an outcome"
    assert run.died and run.shown_status == "died"
    table = format_runs_table([run])
    assert "died at step 120 (step-00000100)" in table and "--resume" in table
    assert "died at step 120" in format_run_details(run, None)


def test_a_live_run_is_running_and_a_finished_one_keeps_its_status(registry, tmp_path):
    run = start(registry, tmp_path)
    assert (run.host, run.pid, run.process_started) == (this_host(), os.getpid(), process_start_time(os.getpid()))
    assert not run.died and run.shown_status == "running"
    registry.finish_run(run.id, "completed")
    assert registry.get(run.id).shown_status == "completed"


def test_a_reused_pid_is_not_mistaken_for_the_run(registry, tmp_path):
    run = start(registry, tmp_path)
    registry.connection.execute("UPDATE runs SET process_started = '1' WHERE id = ?", (run.id,))
    assert registry.get(run.id).died, "same pid, different process start: the run's own process is gone"


def test_runs_on_another_host_cannot_be_judged_from_here(registry, tmp_path):
    run = start(registry, tmp_path)
    registry.connection.execute("UPDATE runs SET host = 'elsewhere', pid = 999999999 WHERE id = ?", (run.id,))
    assert registry.get(run.id).shown_status == "running"


def test_resuming_continues_the_same_row_with_the_new_process(registry, tmp_path):
    record_in_a_process_that_is_then_killed(registry.path, tmp_path / "killed")
    killed = registry.get("killed")
    with recorded_run(
        registry,
        resume_artifact=True,
        name="killed",
        kind="pretrain",
        config={},
        data_fingerprints=None,
        tokenizer_hash=None,
        artifact_path=tmp_path / "killed",
    ) as handle:
        assert handle.id == killed.id
        resumed = registry.get(handle.id)
        assert resumed.pid == os.getpid() and not resumed.died
        assert resumed.last_step == 120, "progress recorded before the kill stays until the new process reports"
    assert [run.name for run in registry.list_runs()] == ["killed"]
    assert registry.get("killed").status == "completed"


def test_heartbeats_are_throttled_but_checkpoints_always_recorded(registry, tmp_path):
    handle = RunHandle(record=start(registry, tmp_path), registry=registry)
    handle.heartbeat(10)
    handle.heartbeat(20)  # within the interval: not written
    assert registry.get(handle.id).last_step == 10
    handle.heartbeat(30, tmp_path / "ko-mini" / "checkpoints" / "step-00000030")
    run = registry.get(handle.id)
    assert run.last_step == 30 and run.last_checkpoint.endswith("step-00000030") and run.heartbeat_at is not None


def test_a_dead_run_that_never_reported_progress_is_just_died(registry, tmp_path):
    run = start(registry, tmp_path)
    registry.connection.execute("UPDATE runs SET pid = 999999999 WHERE id = ?", (run.id,))
    assert format_status(registry.get(run.id)) == "died"
    assert "  died  " in format_runs_table([registry.get(run.id)])
