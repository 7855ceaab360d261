"""The run registry: one SQLite file recording every import, pre-training, fine-tuning and export.

Runs form a tree (pre-trained weights initialise fine-tunes, which may be fine-tuned again), so
each row points at its parent and lineage questions are answered in SQL with `WITH RECURSIVE`.
Several training processes may share one registry, so the file runs in WAL mode with a generous
busy timeout and every write is one short `BEGIN IMMEDIATE` transaction: writers queue instead of
failing, and readers never block them. The schema is versioned with `PRAGMA user_version` and
upgraded in place by an ordered list of migrations, so an old registry keeps its history.

Liveness: a running command records its host, pid and process start time, and the training loop
refreshes a heartbeat with the last step and checkpoint. A SIGKILL (OOM killer, pre-empted VM)
leaves the row `running`; readers compare the pid with the processes alive on this host and show
such a run as `died` (`RunRecord.shown_status`) without writing anything.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from prefine.atomic_files import process_start_time
from prefine.crashpoints import crash_point
from prefine.errors import PrefineError

RUN_KINDS = ("import", "pretrain", "finetune", "export")
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
FINISHED_STATUSES = ("completed", "failed", "interrupted")
REGISTRY_FILENAME = "registry.sqlite"
REGISTRY_ENV_VAR = "PREFINE_REGISTRY"
# Long enough to outlast any other process's write (each is a single short transaction), short
# enough that a registry wedged by a crashed NFS lock still surfaces as an error.
BUSY_TIMEOUT_MS = 30_000

# Each entry upgrades the schema by one version; entry i takes user_version i to i + 1. Never edit
# a released entry: registries in the wild were built by it. Append a new one instead.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the base table.
    (
        """
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
        )
        """,
        "CREATE UNIQUE INDEX runs_name ON runs(name)",
        "CREATE INDEX runs_parent_id ON runs(parent_id)",
    ),
    # v2: a headline metric per run for `prefine runs`, the failure message, and an index for
    # mapping a checkpoint folder back to the run that wrote it.
    (
        "ALTER TABLE runs ADD COLUMN key_metric_name TEXT",
        "ALTER TABLE runs ADD COLUMN key_metric_value REAL",
        "ALTER TABLE runs ADD COLUMN error TEXT",
        "CREATE INDEX runs_artifact_path ON runs(artifact_path)",
    ),
    # v3: liveness. Where the run's process lives (host, pid, and the pid's start time, so a
    # reused pid is not mistaken for it), when it last reported, and how far it had got.
    (
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN process_started TEXT",
        "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
        "ALTER TABLE runs ADD COLUMN last_step INTEGER",
        "ALTER TABLE runs ADD COLUMN last_checkpoint TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

RUN_COLUMNS = (
    "id",
    "name",
    "kind",
    "parent_id",
    "status",
    "started_at",
    "finished_at",
    "config_json",
    "data_fingerprints_json",
    "tokenizer_hash",
    "metrics_json",
    "key_metric_name",
    "key_metric_value",
    "artifact_path",
    "prefine_version",
    "torch_version",
    "error",
    "host",
    "pid",
    "process_started",
    "heartbeat_at",
    "last_step",
    "last_checkpoint",
)
_SELECT_COLUMNS = ", ".join(f"r.{column}" for column in RUN_COLUMNS)
# Ids are zero-padded inside lineage paths so that sorting the path strings sorts siblings by id
# (creation order) and keeps every subtree contiguous: a preorder traversal.
_PATH_ID = "printf('%012d', {})"


def default_registry_path(run_dir: Path | None) -> Path:
    """$PREFINE_REGISTRY if set, else `registry.sqlite` next to the run folder (or in ./runs/)."""
    from_env = os.environ.get(REGISTRY_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    if run_dir is None:
        return Path("runs") / REGISTRY_FILENAME
    return Path(run_dir).expanduser().resolve().parent / REGISTRY_FILENAME


def this_host() -> str:
    return socket.gethostname()


def find_registry(explicit: Path | str | None = None, near_run: Path | None = None) -> Path:
    """The registry a command reads, found the same way by every command.

    In order: --registry; $PREFINE_REGISTRY; beside the run folder the command names (where
    training put it); ./runs/registry.sqlite; else the single registry in ./, ./runs/* or ./*
    (the quickstart keeps one inside its own folder). Several candidates are an error that lists
    them. The path returned may not exist; callers say where they looked.
    """
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(REGISTRY_ENV_VAR):
        return Path(os.environ[REGISTRY_ENV_VAR]).expanduser()
    if near_run is not None and (beside := Path(near_run).expanduser().resolve().parent / REGISTRY_FILENAME).is_file():
        return beside
    default = Path("runs") / REGISTRY_FILENAME
    if default.is_file():
        return default
    found = sorted({*Path().glob(REGISTRY_FILENAME), *Path().glob(f"runs/*/{REGISTRY_FILENAME}"), *Path().glob(f"*/{REGISTRY_FILENAME}")})
    if len(found) > 1:
        raise PrefineError(f"several run registries here ({', '.join(map(str, found))}); choose one with --registry PATH")
    return found[0] if found else default


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=_jsonable)


def _jsonable(value: Any) -> Any:
    # numpy and torch scalars carry .item(); anything else (Path, enum) is recorded as text.
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _this_process() -> tuple[str, int, str | None]:
    return this_host(), os.getpid(), process_start_time(os.getpid())


def _package_version(package: str) -> str | None:
    # Read from installed metadata rather than importing torch: recording a run must stay cheap.
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class RunRecord:
    """One row of the registry, with its JSON columns decoded."""

    id: int
    name: str
    kind: str
    parent_id: int | None
    status: str
    started_at: str
    finished_at: str | None
    config: dict
    data_fingerprints: dict | None
    tokenizer_hash: str | None
    metrics: dict | None
    key_metric_name: str | None
    key_metric_value: float | None
    artifact_path: Path
    prefine_version: str | None
    torch_version: str | None
    error: str | None
    host: str | None = None
    pid: int | None = None
    process_started: str | None = None
    heartbeat_at: str | None = None
    last_step: int | None = None
    last_checkpoint: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            parent_id=row["parent_id"],
            status=row["status"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            config=json.loads(row["config_json"]),
            data_fingerprints=json.loads(row["data_fingerprints_json"]) if row["data_fingerprints_json"] else None,
            tokenizer_hash=row["tokenizer_hash"],
            metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else None,
            key_metric_name=row["key_metric_name"],
            key_metric_value=row["key_metric_value"],
            artifact_path=Path(row["artifact_path"]),
            prefine_version=row["prefine_version"],
            torch_version=row["torch_version"],
            error=row["error"],
            host=row["host"],
            pid=row["pid"],
            process_started=row["process_started"],
            heartbeat_at=row["heartbeat_at"],
            last_step=row["last_step"],
            last_checkpoint=row["last_checkpoint"],
        )

    @property
    def died(self) -> bool:
        """Recorded as running, but its process on this host is gone (killed without a chance to say so).

        Runs on other hosts cannot be checked from here and keep their recorded status.
        """
        if self.status != "running" or self.pid is None or self.host != this_host():
            return False
        started = process_start_time(self.pid)
        return started is None or (bool(self.process_started) and bool(started) and started != self.process_started)

    @property
    def shown_status(self) -> str:
        """The status to show: `died` for a running row whose process is gone, else the recorded one."""
        return "died" if self.died else self.status

    @property
    def artifact_exists(self) -> bool:
        """Checked on every access: artifact folders get moved and deleted behind the registry's back."""
        return self.artifact_path.exists()

    @property
    def key_metric(self) -> tuple[str, float] | None:
        if self.key_metric_name is None or self.key_metric_value is None:
            return None
        return self.key_metric_name, self.key_metric_value

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        elapsed = datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)
        return elapsed.total_seconds()


class RunRegistry:
    """A SQLite registry file; create one per process (connections must not cross a fork)."""

    def __init__(self, path: Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write takes the write
        # lock up front (waiting on busy_timeout) instead of failing midway on a lock upgrade.
        try:
            self.connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.OperationalError as error:
            raise PrefineError(f"cannot open registry {self.path} ({error}); pass --registry PATH to a writable file") from error
        self.connection.row_factory = sqlite3.Row
        try:
            self.connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.connection.execute("PRAGMA foreign_keys = ON")
            self._retry_while_locked(self._open_schema)
        except sqlite3.OperationalError as error:
            # Locked past the timeout, unwritable folder, read-only file: the file itself is fine.
            self.connection.close()
            raise PrefineError(
                f"cannot open registry {self.path} ({error}); check that its folder is writable and no "
                "process holds it locked, or pass --registry PATH"
            ) from error
        except sqlite3.DatabaseError as error:
            self.connection.close()
            raise PrefineError(
                f"registry {self.path} is not a readable SQLite database ({error}); move it aside "
                f"(mv {self.path} {self.path}.broken) to start a fresh one, or pass --registry PATH"
            ) from error
        except BaseException:
            self.connection.close()
            raise

    def _open_schema(self) -> None:
        self.connection.execute("PRAGMA journal_mode = WAL")
        self._migrate()

    @staticmethod
    def _retry_while_locked(action) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at
        # once there instead of calling the busy handler; several processes creating the registry
        # together (parallel runs) would fail. Retry until the same timeout writes get.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        crash_point("registry-write")
        self.connection.execute("COMMIT")

    def _schema_version(self) -> int:
        return self.connection.execute("PRAGMA user_version").fetchone()[0]

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise PrefineError(
                f"registry {self.path} was written by a newer prefine (schema {version} > {SCHEMA_VERSION}); upgrade prefine"
            )

    def _migrate(self) -> None:
        version = self._schema_version()
        self._check_not_newer(version)
        if version == SCHEMA_VERSION:
            return
        with self._write() as connection:
            # Re-read under the write lock: another process may have migrated while we waited.
            version = self._schema_version()
            self._check_not_newer(version)
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
            # user_version lives in the database header and is covered by the transaction, so a
            # crash mid-migration leaves the old version and the old schema together.
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def start_run(
        self,
        *,
        name: str,
        kind: str,
        parent_id: int | None = None,
        config: dict,
        data_fingerprints: dict | None,
        tokenizer_hash: str | None,
        artifact_path: Path,
    ) -> RunRecord:
        """Record a run as `running`; a taken name gets a -2, -3... suffix (see the returned record)."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        artifact = str(Path(artifact_path).expanduser().resolve())
        with self._write() as connection:
            if parent_id is not None and connection.execute("SELECT 1 FROM runs WHERE id = ?", (parent_id,)).fetchone() is None:
                raise PrefineError(f"parent run id {parent_id} is not in registry {self.path}; `prefine runs` lists the runs")
            unique_name = self._unused_name(connection, name)
            cursor = connection.execute(
                """
                INSERT INTO runs (name, kind, parent_id, status, started_at, config_json,
                                  data_fingerprints_json, tokenizer_hash, artifact_path,
                                  prefine_version, torch_version, host, pid, process_started, heartbeat_at)
                VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    unique_name,
                    kind,
                    parent_id,
                    utc_now(),
                    _to_json(config),
                    _to_json(data_fingerprints),
                    tokenizer_hash,
                    artifact,
                    _package_version("prefine"),
                    _package_version("torch"),
                    *_this_process(),
                    utc_now(),
                ),
            )
            run_id = cursor.lastrowid
        if run_id is None:
            raise sqlite3.DatabaseError("the registry recorded the new run without giving its row id")
        return self.get(run_id)

    @staticmethod
    def _unused_name(connection: sqlite3.Connection, name: str) -> str:
        # Runs within one BEGIN IMMEDIATE, so no other process can take the name we pick.
        taken = {row[0] for row in connection.execute("SELECT name FROM runs WHERE name = ? OR name GLOB ?", (name, f"{name}-*"))}
        candidate, suffix = name, 2
        while candidate in taken:
            candidate, suffix = f"{name}-{suffix}", suffix + 1
        return candidate

    def finish_run(
        self,
        run_id: int,
        status: str,
        metrics: dict | None = None,
        key_metric: tuple[str, float] | None = None,
        error: str | None = None,
    ) -> None:
        """Mark a run completed, failed or interrupted, with its final metrics."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"a finished run's status must be one of {FINISHED_STATUSES}, got {status!r}")
        key_name, key_value = key_metric if key_metric is not None else (None, None)
        with self._write() as connection:
            cursor = connection.execute(
                """
                UPDATE runs SET status = ?, finished_at = ?, metrics_json = ?, key_metric_name = ?,
                                key_metric_value = ?, error = ?
                WHERE id = ?
                """,
                (status, utc_now(), _to_json(metrics), key_name, None if key_value is None else float(key_value), error, run_id),
            )
            if cursor.rowcount == 0:
                raise PrefineError(f"no run with id {run_id} in registry {self.path}; `prefine runs` lists them")

    def reopen_run(self, run_id: int) -> RunRecord:
        """A resumed run continues its own row (status back to running) instead of becoming a new run."""
        with self._write() as connection:
            cursor = connection.execute(
                """
                UPDATE runs SET status = 'running', finished_at = NULL, error = NULL,
                                host = ?, pid = ?, process_started = ?, heartbeat_at = ?
                WHERE id = ?
                """,
                (*_this_process(), utc_now(), run_id),
            )
            if cursor.rowcount == 0:
                raise PrefineError(f"no run with id {run_id} in registry {self.path}; `prefine runs` lists them")
        return self.get(run_id)

    def heartbeat(self, run_id: int, step: int, checkpoint: Path | None = None) -> None:
        """The run is alive at `step`; `checkpoint` (if given) is its newest complete checkpoint."""
        with self._write() as connection:
            connection.execute(
                """
                UPDATE runs SET heartbeat_at = ?, last_step = ?, last_checkpoint = coalesce(?, last_checkpoint)
                WHERE id = ?
                """,
                (utc_now(), int(step), None if checkpoint is None else str(Path(checkpoint).resolve()), run_id),
            )

    def get(self, name_or_id: str | int) -> RunRecord:
        """A run by name, or by id (an int, or digits that are not some run's name)."""
        row = None
        if isinstance(name_or_id, str):
            row = self.connection.execute(f"SELECT {_SELECT_COLUMNS} FROM runs r WHERE r.name = ?", (name_or_id,)).fetchone()
        if row is None and str(name_or_id).isdigit():
            row = self.connection.execute(f"SELECT {_SELECT_COLUMNS} FROM runs r WHERE r.id = ?", (int(name_or_id),)).fetchone()
        if row is None:
            raise PrefineError(f"no run named {name_or_id}; `prefine runs` lists them (registry {self.path})")
        return RunRecord.from_row(row)

    def find_by_artifact(self, path: Path) -> RunRecord | None:
        """The run whose artifact folder is `path` or contains it (deepest match, then newest run)."""
        resolved = Path(path).expanduser().resolve()
        candidates = [str(resolved), *(str(parent) for parent in resolved.parents)]
        placeholders = ", ".join("?" for _ in candidates)
        row = self.connection.execute(
            f"""
            SELECT {_SELECT_COLUMNS} FROM runs r WHERE r.artifact_path IN ({placeholders})
            ORDER BY length(r.artifact_path) DESC, r.id DESC LIMIT 1
            """,
            candidates,
        ).fetchone()
        return RunRecord.from_row(row) if row is not None else None

    def list_runs(self) -> list[RunRecord]:
        rows = self.connection.execute(f"SELECT {_SELECT_COLUMNS} FROM runs r ORDER BY r.id")
        return [RunRecord.from_row(row) for row in rows]

    def ancestors(self, run: RunRecord | str | int, max_depth: int = 100) -> list[RunRecord]:
        """The run, its parent, ... up to the root (at most `max_depth` steps up); stops on a cycle."""
        start = self._resolve(run)
        rows = self.connection.execute(
            f"""
            WITH RECURSIVE lineage(id, parent_id, depth, path) AS (
                SELECT id, parent_id, 0, '/' || {_PATH_ID.format("id")} || '/' FROM runs WHERE id = :start
                UNION ALL
                SELECT parent.id, parent.parent_id, lineage.depth + 1,
                       lineage.path || {_PATH_ID.format("parent.id")} || '/'
                FROM runs parent JOIN lineage ON parent.id = lineage.parent_id
                WHERE lineage.depth < :max_depth
                  AND instr(lineage.path, '/' || {_PATH_ID.format("parent.id")} || '/') = 0
            )
            SELECT {_SELECT_COLUMNS} FROM lineage JOIN runs r ON r.id = lineage.id ORDER BY lineage.depth
            """,
            {"start": start.id, "max_depth": max_depth},
        )
        return [RunRecord.from_row(row) for row in rows]

    def descendants(self, run: RunRecord | str | int, max_depth: int = 100) -> list[tuple[RunRecord, int]]:
        """The run and everything grown from it, in preorder with depth (the run itself is depth 0)."""
        start = self._resolve(run)
        rows = self.connection.execute(
            f"""
            WITH RECURSIVE tree(id, depth, path) AS (
                SELECT id, 0, '/' || {_PATH_ID.format("id")} || '/' FROM runs WHERE id = :start
                UNION ALL
                SELECT child.id, tree.depth + 1, tree.path || {_PATH_ID.format("child.id")} || '/'
                FROM runs child JOIN tree ON child.parent_id = tree.id
                WHERE tree.depth < :max_depth
                  AND instr(tree.path, '/' || {_PATH_ID.format("child.id")} || '/') = 0
            )
            SELECT {_SELECT_COLUMNS}, tree.depth AS depth FROM tree JOIN runs r ON r.id = tree.id ORDER BY tree.path
            """,
            {"start": start.id, "max_depth": max_depth},
        )
        return [(RunRecord.from_row(row), row["depth"]) for row in rows]

    def _resolve(self, run: RunRecord | str | int) -> RunRecord:
        return run if isinstance(run, RunRecord) else self.get(run)
