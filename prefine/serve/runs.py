"""The run registry over HTTP, for the /runs page: the runs table, one run's lineage, its learning curves.

Read-only JSON views of what `prefine runs`, `prefine lineage` and `prefine plot` show on the
command line. The registry is opened per request (SQLite connections must not cross threads)
and read only; a server started before a run was recorded sees it on the next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from prefine.errors import PrefineError
from prefine.registry import RunRegistry
from prefine.registry.plot import METRICS_FILENAME, read_metrics_log

# A curve of a long run can have tens of thousands of logged steps; the page draws at most this
# many points per metric, evenly spaced, always keeping the last one.
MAX_CURVE_POINTS = 2000


def _run_summary(run, names_by_id: dict[int, str], served: dict[Path, list[str]]) -> dict[str, Any]:
    key_metric = run.key_metric
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "parent": names_by_id.get(run.parent_id) if run.parent_id is not None else None,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run.duration_seconds,
        "key_metric": {"name": key_metric[0], "value": key_metric[1]} if key_metric else None,
        "artifact_path": str(run.artifact_path),
        "artifact_exists": run.artifact_exists,
        "served_as": served.get(run.artifact_path.resolve(), []) if run.artifact_exists else [],  # names this server answers to for it
    }


def thin_curve(records: list[dict[str, Any]], limit: int = MAX_CURVE_POINTS) -> list[dict[str, Any]]:
    """Every evaluation record, and at most `limit` training records evenly spaced (first and last kept)."""
    training = [record for record in records if not any(key.startswith("eval/") for key in record)]
    if len(training) <= limit:
        return records
    stride = (len(training) - 1) / (limit - 1)
    dropped = {id(record) for record in training} - {id(training[round(index * stride)]) for index in range(limit)}
    return [record for record in records if id(record) not in dropped]


def add_run_routes(app: FastAPI, registry_path: Path | None, served: dict[Path, list[str]]) -> None:

    def open_registry() -> RunRegistry | None:
        if registry_path is None or not registry_path.is_file():
            return None
        return RunRegistry(registry_path)

    def not_found(message: str) -> JSONResponse:
        return JSONResponse({"error": message, "code": "unknown_run"}, status_code=404)

    @app.get("/v1/runs", summary="the run registry's runs")
    def list_runs() -> dict[str, Any]:
        registry = open_registry()
        if registry is None:
            return {"registry": str(registry_path) if registry_path else None, "runs": [], "message": f"no registry at {registry_path}"}
        with registry:
            runs = registry.list_runs()
        names_by_id = {run.id: run.name for run in runs}
        return {"registry": str(registry_path), "runs": [_run_summary(run, names_by_id, served) for run in runs]}

    class RunNotFound(Exception):
        """A run name the registry does not know (or no registry): answered as 404."""

    def registry_and_run(name: str):
        """(open registry, the run named `name`); RunNotFound when either is missing."""
        registry = open_registry()
        if registry is None:
            raise RunNotFound(f"no registry at {registry_path}")
        try:
            return registry, registry.get(name)
        except PrefineError as error:
            registry.close()
            raise RunNotFound(str(error)) from None

    @app.get("/v1/runs/{name}", summary="one run: its configuration, metrics and lineage")
    def show_run(name: str):
        try:
            registry, run = registry_and_run(name)
        except RunNotFound as error:
            return not_found(str(error))
        with registry:
            names_by_id = {other.id: other.name for other in registry.list_runs()}
            ancestors = registry.ancestors(run)
            descendants = registry.descendants(run)
        return {
            **_run_summary(run, names_by_id, served),
            "config": run.config,
            "metrics": run.metrics,
            "error": run.error,
            "ancestors": [_run_summary(other, names_by_id, served) for other in ancestors[1:]],
            "descendants": [{**_run_summary(other, names_by_id, served), "depth": depth} for other, depth in descendants[1:]],
        }

    @app.get("/v1/runs/{name}/metrics", summary="a run's metrics.jsonl: training and evaluation metrics by step")
    def run_metrics(name: str):
        try:
            registry, run = registry_and_run(name)
        except RunNotFound as error:
            return not_found(str(error))
        registry.close()
        try:
            records = read_metrics_log(run.artifact_path / METRICS_FILENAME)
        except PrefineError as error:
            return JSONResponse({"name": run.name, "records": [], "message": str(error)})
        return {"name": run.name, "records": thin_curve(records)}
