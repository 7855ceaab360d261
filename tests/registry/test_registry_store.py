"""RunRegistry: lineage queries, naming, migrations, damaged files and concurrent writers."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest

from prefine.errors import PrefineError
from prefine.registry import RunRegistry, default_registry_path
from prefine.registry.store import SCHEMA_VERSION


def names(records) -> list[str]:
    return [record.name for record in records]


def test_ancestors_run_from_the_run_up_to_the_root(registry, lineage_tree):
    assert names(registry.ancestors("ko-mini-sentiment-v2")) == [
        "ko-mini-sentiment-v2",
        "ko-mini-sentiment",
        "ko-mini",
        "minilm",
    ]
    assert names(registry.ancestors("ko-mini-qa")) == ["ko-mini-qa", "ko-mini", "minilm"]
    assert names(registry.ancestors("minilm")) == ["minilm"]


def test_descendants_are_preorder_with_depths(registry, lineage_tree):
    tree = [(run.name, depth) for run, depth in registry.descendants("minilm")]
    # ko-mini-sentiment-v2 was recorded after ko-mini-qa but belongs under its parent in preorder.
    assert tree == [
        ("minilm", 0),
        ("ko-mini", 1),
        ("ko-mini-sentiment", 2),
        ("ko-mini-sentiment-v2", 3),
        ("ko-mini-qa", 2),
    ]
    assert [(run.name, depth) for run, depth in registry.descendants("ko-mini-qa")] == [("ko-mini-qa", 0)]


def test_lineage_is_one_recursive_sql_query_whatever_the_depth(registry, make_run):
    chain = [make_run(registry, "run-0", "pretrain", None)]
    for index in range(1, 30):
        chain.append(make_run(registry, f"run-{index}", "finetune", chain[-1]))
    statements: list[str] = []
    registry.connection.set_trace_callback(statements.append)

    ancestors = registry.ancestors(chain[-1])
    descendants = registry.descendants(chain[0])

    registry.connection.set_trace_callback(None)
    assert len(ancestors) == 30 and len(descendants) == 30
    assert len(statements) == 2
    assert all("WITH RECURSIVE" in statement for statement in statements)


def test_parent_cycle_terminates(registry, make_run):
    a = make_run(registry, "a", "pretrain", None)
    b = make_run(registry, "b", "finetune", a)
    c = make_run(registry, "c", "finetune", b)
    registry.connection.execute("UPDATE runs SET parent_id = ? WHERE id = ?", (c.id, a.id))

    assert names(registry.ancestors(c)) == ["c", "b", "a"]
    assert [(run.name, depth) for run, depth in registry.descendants(a)] == [("a", 0), ("b", 1), ("c", 2)]
    self_loop = make_run(registry, "loop", "pretrain", None)
    registry.connection.execute("UPDATE runs SET parent_id = id WHERE id = ?", (self_loop.id,))
    assert names(registry.ancestors(self_loop)) == ["loop"]
    assert [run.name for run, _ in registry.descendants(self_loop)] == ["loop"]


def test_depth_limit_caps_both_directions(registry, make_run):
    chain = [make_run(registry, "root", "pretrain", None)]
    for index in range(1, 6):
        chain.append(make_run(registry, f"gen-{index}", "finetune", chain[-1]))

    assert names(registry.ancestors(chain[-1], max_depth=2)) == ["gen-5", "gen-4", "gen-3"]
    assert [(run.name, depth) for run, depth in registry.descendants(chain[0], max_depth=2)] == [
        ("root", 0),
        ("gen-1", 1),
        ("gen-2", 2),
    ]


def test_taken_names_get_a_numeric_suffix(registry, make_run):
    chosen = [make_run(registry, "ko-mini", "pretrain", None).name for _ in range(3)]
    assert chosen == ["ko-mini", "ko-mini-2", "ko-mini-3"]
    assert make_run(registry, "ko-mini-2", "pretrain", None).name == "ko-mini-2-2"
    with pytest.raises(sqlite3.IntegrityError):
        registry.connection.execute("UPDATE runs SET name = 'ko-mini' WHERE name = 'ko-mini-3'")


def test_start_and_finish_record_everything(registry, tmp_path):
    run = registry.start_run(
        name="ko-mini",
        kind="pretrain",
        config={"optim": {"lr": 1e-4}, "out": tmp_path / "x"},
        data_fingerprints={"corpus": "sha256:abc"},
        tokenizer_hash="tok",
        artifact_path=Path("relative/ko-mini"),
    )
    assert run.status == "running" and run.finished_at is None
    assert run.artifact_path.is_absolute()
    assert run.config == {"optim": {"lr": 1e-4}, "out": str(tmp_path / "x")}
    assert run.prefine_version is not None and run.torch_version is not None

    registry.finish_run(run.id, "completed", {"eval/loss": 2.5}, ("eval/loss", 2.5))
    finished = registry.get("ko-mini")
    assert finished.status == "completed"
    assert finished.metrics == {"eval/loss": 2.5}
    assert finished.key_metric == ("eval/loss", 2.5)
    assert finished.duration_seconds is not None and finished.duration_seconds >= 0
    with pytest.raises(ValueError):
        registry.finish_run(run.id, "running")


def test_get_by_name_or_id_and_unknown_names(registry, lineage_tree):
    ko_mini = lineage_tree["ko-mini"]
    assert registry.get(ko_mini.id).name == "ko-mini"
    assert registry.get(str(ko_mini.id)).name == "ko-mini"
    with pytest.raises(PrefineError, match="no run named ko-maxi; `prefine runs` lists them"):
        registry.get("ko-maxi")
    with pytest.raises(PrefineError, match="parent run id 999"):
        registry.start_run(
            name="orphan",
            kind="finetune",
            parent_id=999,
            config={},
            data_fingerprints=None,
            tokenizer_hash=None,
            artifact_path=ko_mini.artifact_path,
        )


def test_find_by_artifact_maps_checkpoints_back_to_their_run(registry, lineage_tree, make_run):
    ko_mini = lineage_tree["ko-mini"]
    checkpoint = ko_mini.artifact_path / "checkpoints" / "step-20"
    assert registry.find_by_artifact(checkpoint).name == "ko-mini"
    assert registry.find_by_artifact(ko_mini.artifact_path).name == "ko-mini"
    assert registry.find_by_artifact(registry.path.parent / "elsewhere") is None
    # An export written inside a run's folder is the deeper, more specific match.
    export = make_run(registry, "ko-mini/export", "export", ko_mini)
    assert registry.find_by_artifact(export.artifact_path / "model.safetensors").name == "ko-mini/export"


def test_moved_artifacts_are_listed_and_flagged_missing(registry, lineage_tree):
    shutil.rmtree(lineage_tree["ko-mini-qa"].artifact_path)
    by_name = {run.name: run for run in registry.list_runs()}
    assert set(by_name) == set(lineage_tree)
    assert not by_name["ko-mini-qa"].artifact_exists
    assert by_name["ko-mini"].artifact_exists


def test_default_registry_path(monkeypatch, tmp_path):
    assert default_registry_path(tmp_path / "runs" / "ko-mini") == (tmp_path / "runs" / "registry.sqlite").resolve()
    assert default_registry_path(None) == Path("runs") / "registry.sqlite"
    monkeypatch.setenv("PREFINE_REGISTRY", str(tmp_path / "shared.sqlite"))
    assert default_registry_path(tmp_path / "runs" / "ko-mini") == tmp_path / "shared.sqlite"
    assert default_registry_path(None) == tmp_path / "shared.sqlite"


# The schema exactly as prefine's first release created it: kept verbatim here (not imported)
# so the test keeps checking real v1 files even if the migration list is edited by mistake.
V1_DDL = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('import', 'pretrain', 'finetune', 'export')),
    parent_id INTEGER REFERENCES runs(id),
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    config_json TEXT NOT NULL,
    data_fingerprints_json TEXT,
    tokenizer_hash TEXT,
    metrics_json TEXT,
    artifact_path TEXT NOT NULL,
    prefine_version TEXT,
    torch_version TEXT
);
CREATE UNIQUE INDEX runs_name ON runs(name);
CREATE INDEX runs_parent_id ON runs(parent_id);
PRAGMA user_version = 1;
"""


def test_v1_registry_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "registry.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_DDL)
    old.execute(
        "INSERT INTO runs VALUES (1, 'bert-base', 'import', NULL, 'completed', '2024-01-01T00:00:00+00:00',"
        " '2024-01-01T00:01:00+00:00', '{}', NULL, 'tok', '{\"eval/loss\": 3.0}', ?, '0.0.1', '2.1.0')",
        (str(tmp_path / "bert-base"),),
    )
    old.execute(
        "INSERT INTO runs VALUES (2, 'ko-bert', 'finetune', 1, 'running', '2024-01-02T00:00:00+00:00',"
        " NULL, '{\"optim\": {\"lr\": 0.001}}', '{\"train\": \"sha\"}', 'tok', NULL, ?, '0.0.1', '2.1.0')",
        (str(tmp_path / "ko-bert"),),
    )
    old.commit()
    old.close()

    with RunRegistry(path) as registry:
        assert registry.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert names(registry.ancestors("ko-bert")) == ["ko-bert", "bert-base"]
        migrated = registry.get("bert-base")
        assert migrated.metrics == {"eval/loss": 3.0} and migrated.key_metric is None and migrated.error is None
        assert registry.get("ko-bert").config == {"optim": {"lr": 0.001}}
        registry.finish_run(2, "failed", error="boom")
        assert registry.get("ko-bert").error == "boom"
        indexes = {row[0] for row in registry.connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"runs_name", "runs_parent_id", "runs_artifact_path"} <= indexes
    # Re-opening an up-to-date registry must not migrate (or fail) again.
    with RunRegistry(path) as registry:
        assert len(registry.list_runs()) == 2


def test_registry_from_a_newer_prefine_is_refused(tmp_path):
    path = tmp_path / "registry.sqlite"
    RunRegistry(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    expected = f"was written by a newer prefine \\(schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION}\\); upgrade prefine"
    with pytest.raises(PrefineError, match=expected):
        RunRegistry(path)


def test_corrupt_registry_is_reported_and_left_untouched(tmp_path):
    path = tmp_path / "registry.sqlite"
    garbage = b"this is not a database, just some bytes somebody wrote here" * 20
    path.write_bytes(garbage)
    with pytest.raises(PrefineError, match="move it aside") as raised:
        RunRegistry(path)
    assert str(path) in str(raised.value)
    assert path.read_bytes() == garbage


def write_runs_in_parallel(path: str, worker: int, runs_per_worker: int, barrier) -> None:
    barrier.wait()  # start together so the writers really contend for the lock
    with RunRegistry(Path(path)) as registry:
        for index in range(runs_per_worker):
            run = registry.start_run(
                name="sweep",
                kind="finetune",
                config={"worker": worker, "index": index},
                data_fingerprints=None,
                tokenizer_hash=None,
                artifact_path=Path(path).parent / f"w{worker}-{index}",
            )
            registry.heartbeat(run.id, index, Path(path).parent / f"w{worker}-{index}" / "checkpoints" / "step-1")
            registry.finish_run(run.id, "completed", {"worker": worker, "index": index}, ("index", float(index)))


def test_parallel_writer_processes_lose_no_rows(tmp_path):
    workers, runs_per_worker = 4, 25
    path = tmp_path / "runs" / "registry.sqlite"  # not created yet: the workers race to create it too
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=write_runs_in_parallel, args=(str(path), worker, runs_per_worker, barrier)) for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * workers

    with RunRegistry(path) as registry:
        runs = registry.list_runs()
    assert len(runs) == workers * runs_per_worker
    assert {run.name for run in runs} == {"sweep"} | {f"sweep-{n}" for n in range(2, workers * runs_per_worker + 1)}
    assert all(run.status == "completed" for run in runs)
    assert all(run.metrics == run.config and run.key_metric_value == run.config["index"] for run in runs)
    assert all(
        run.last_step == run.config["index"] and run.last_checkpoint.endswith(f"w{run.config['worker']}-{run.last_step}/checkpoints/step-1")
        for run in runs
    )
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    assert {(run.config["worker"], run.config["index"]) for run in runs} == {
        (worker, index) for worker in range(workers) for index in range(runs_per_worker)
    }


def test_a_writer_killed_inside_its_transaction_loses_nothing_of_the_others(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "registry.sqlite"
    with RunRegistry(path) as registry:
        kept = registry.start_run(
            name="kept", kind="pretrain", config={}, data_fingerprints=None, tokenizer_hash=None, artifact_path=tmp_path / "kept"
        )
    script = (
        "from pathlib import Path\nfrom prefine.registry import RunRegistry\n"
        f"registry = RunRegistry(Path({str(path)!r}))\n"
        "registry.start_run(name='victim', kind='pretrain', config={}, data_fingerprints=None, tokenizer_hash=None, "
        f"artifact_path=Path({str(tmp_path / 'v')!r}))\n"
    )
    env = {**os.environ, "PREFINE_CRASH_AT": "registry-write:1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    victim = subprocess.run([sys.executable, "-c", script], env=env)
    assert victim.returncode == -9, "the writer must have been killed inside its transaction"
    with RunRegistry(path) as registry:  # the killed writer's lock and half transaction are gone
        registry.heartbeat(kept.id, 5)
        assert [run.name for run in registry.list_runs()] == ["kept"] and registry.get("kept").last_step == 5
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
