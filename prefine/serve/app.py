"""The HTTP API and web page of `prefine serve`, as an ASGI app (FastAPI on Starlette).

Routes:
  GET  /                 the page to try any served model (static files shipped in the package)
  GET  /runs             the page of the run registry: runs table, lineage, learning curves
  GET  /health           the process is up
  GET  /ready            every model is loaded and its batcher running (503 until then and while stopping)
  GET  /metrics          Prometheus text: requests, errors, latency, batch sizes, queue depth, each model's backend
  GET  /v1/models        what is served, what one input of each model holds, and what computes it ("backend")
  POST /v1/predict       {"model": NAME, "inputs": [...], "options": {...}} -> {"model", "outputs": [...]}
  POST /v1/stream        the same body -> newline-delimited JSON events, for models that stream (below)
  GET  /v1/runs          the registry's runs; /v1/runs/NAME: one run with its lineage;
                         /v1/runs/NAME/metrics: its metrics.jsonl
  GET  /docs             the API's documentation, drawn from /openapi.json (no CDN)

An input is the task's natural JSON object ({"text": ...}, {"text": ..., "text_pair": ...},
{"question": ..., "context": ...}), or a bare string for {"text": string}; it goes unchanged to
the model's `predict_records`, so every registered task is served without code here. Errors are
JSON {"error": one line, "code": short name} (plus "limit" when a limit was hit).

Streaming (for text generation): a predictor may also have `stream_records(records, **options)`,
a generator of JSON-able events, each {"index": input position, "delta": text to append} while
decoding and {"index": ..., "output": the input's final result, as predict_records gives it} at
the end. `POST /v1/stream` (same body as /v1/predict) answers its events as newline-delimited
JSON, each step run on the inference thread between batches; /v1/models marks such models
"streams": true and the page then shows text as it is decoded. Generation runs stream.

`create_app` builds the app from a `ServingState` (models, batchers, limits, metrics, readiness,
kept on app.state) and the route groups below, one function each: the pages, the probes, the
predictions; the run registry's routes are in prefine/serve/runs.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError

from prefine import __version__
from prefine.errors import PrefineError
from prefine.serve.batching import DynamicBatcher, QueueFull, ServerClosing
from prefine.serve.metrics import ServerMetrics
from prefine.serve.models import ServedModel
from prefine.serve.runs import add_run_routes
from prefine.training import autocast_context

logger = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("prefine.serve") / "static"))
# Paths anyone may fetch even with --api-key: the page itself (it asks for the key), health
# probes, and the API documentation. Everything that runs a model or reads runs needs the key.
OPEN_PATHS = ("/", "/runs", "/docs", "/health", "/ready", "/openapi.json", "/favicon.ico")
OPEN_PREFIXES = ("/static/",)
# The model label of requests that named no served model: one label, whatever names clients
# send, so a client cannot grow the metrics without bound.
UNKNOWN_MODEL_LABEL = "(unknown)"


@dataclass
class ServeLimits:
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_inputs: int = 64
    max_chars: int = 10_000
    retry_after_seconds: int = 1

    @property
    def max_body_bytes(self) -> int:
        # Every input at its longest, 4 UTF-8 bytes a character, JSON escaping and field names on top.
        return self.max_inputs * (self.max_chars * 4 + 1024) + 64 * 1024


class PredictRequest(BaseModel):
    model: str | None = Field(None, description="served model name (see /v1/models); may be left out when one model is served")
    inputs: list[str | dict[str, Any]] = Field(
        ...,
        description='the model\'s inputs: {"text": ...}, {"text": ..., "text_pair": ...}, {"question": ..., "context": ...}, '
        'or a string for {"text": ...}',
    )
    options: dict[str, Any] = Field(default_factory=dict, description='options of the model\'s predictor, e.g. {"top_k": 3} for fill-mask')


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, limit: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.limit, self.headers = status, code, message, limit, headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.limit:
            body["limit"] = self.limit
        return JSONResponse(body, status_code=self.status, headers=self.headers)


async def _read_body(request: Request) -> bytes:
    """The request's body; a client gone mid-upload (or cut off by the body-size limit) is a 413-style refusal, not a crash."""
    from starlette.requests import ClientDisconnect

    try:
        return await request.body()
    except ClientDisconnect:
        raise ApiError(
            413, "body_too_large", "the request body was cut off (too large, or the client went away)", "max_body_bytes"
        ) from None


class RequestGuard:
    """Pure ASGI middleware: the API key, and the body-size limit.

    The size is checked before a body is read when its length is given, else while it arrives.
    """

    def __init__(self, app, api_key: str, max_body_bytes: int):
        self.app = app
        self.api_key = api_key.encode() if api_key else b""
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = dict(scope["headers"])
        if self.api_key and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES) and not self._authorized(headers):
            error = ApiError(
                401, "unauthorized", "this server needs its API key: send the header 'Authorization: Bearer KEY' (or 'X-API-Key: KEY')"
            )
            return await error.response()(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            error = ApiError(
                413,
                "body_too_large",
                f"the request body has {int(length)} bytes, more than this server's {self.max_body_bytes}",
                "max_body_bytes",
            )
            return await error.response()(scope, receive, send)
        # A body without a length (chunked) is counted as it arrives: past the limit the client gets
        # the 413 at once and the app sees a disconnect, so it never holds more than the limit.
        received = 0
        refused = False

        async def counted_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = True
                    error = ApiError(
                        413, "body_too_large", f"the request body has more than this server's {self.max_body_bytes} bytes", "max_body_bytes"
                    )
                    await error.response()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # the 413 has been answered; whatever the app still says is dropped
                await send(message)

        return await self.app(scope, counted_receive, guarded_send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key", b"")
        bearer = headers.get(b"authorization", b"")
        if bearer.lower().startswith(b"bearer "):
            given = bearer[7:].strip()
        return hmac.compare_digest(given, self.api_key)


class ServingState:
    """What the routes share, kept on `app.state.serving`: the served models, their batchers, the
    limits and metrics, the inference thread, and whether the server is ready."""

    def __init__(self, models: list[ServedModel], limits: ServeLimits, device: Any):
        import torch

        self.models = models
        self.by_name = {model.name: model for model in models}
        self.limits = limits
        self.device = torch.device(device)
        self.metrics = ServerMetrics()
        for model in models:
            self.metrics.backend.set(model.name, model.backend, value=1)
        self.batchers: dict[str, DynamicBatcher] = {}
        self.ready = False
        self.executor: ThreadPoolExecutor | None = None

    def predict_records(self, model: ServedModel, records: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
        """One batched forward pass of `model`; runs on the inference thread."""
        import torch

        with torch.inference_mode(), autocast_context(self.device, "auto"):
            return model.predictor.predict_records(records, batch_size=self.limits.max_batch_size, **options)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI):
        """The app's lifespan: one inference thread and a batcher per model while the server runs."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefine-inference")
        limits = self.limits
        for model in self.models:
            predict = functools.partial(self.predict_records, model)
            batcher = DynamicBatcher(
                model.name, predict, executor, self.metrics, limits.max_batch_size, limits.max_wait_ms / 1000, limits.max_queue
            )
            batcher.start()
            self.batchers[model.name] = batcher
        self.ready, self.executor = True, executor
        try:
            yield
        finally:
            self.ready = False
            for batcher in self.batchers.values():
                await batcher.close()
            executor.shutdown(wait=True)


def create_app(
    models: list[ServedModel], limits: ServeLimits, api_key: str = "", registry_path: Path | None = None, device: Any = "cpu"
) -> FastAPI:
    """The server for already-loaded `models`; batchers start and stop with the app's lifespan."""
    serving = ServingState(models, limits, device)
    app = FastAPI(
        title="prefine serve",
        summary="Predictions from prefine runs, with dynamic batching.",
        version=_version(),
        lifespan=serving.lifespan,
        # FastAPI's own /docs and /redoc load their scripts from a CDN; the package's page works offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.serving = serving
    app.state.models = serving.by_name
    app.state.batchers = serving.batchers
    app.state.metrics = serving.metrics
    app.add_middleware(RequestGuard, api_key=api_key, max_body_bytes=limits.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _add_page_routes(app)
    _add_probe_routes(app)
    _add_prediction_routes(app)

    served: dict[Path, list[str]] = {}
    for model in models:
        served.setdefault(model.run_dir.resolve(), []).append(model.name)
    add_run_routes(app, registry_path, served)
    return app


def _serving(request: Request) -> ServingState:
    return request.app.state.serving


# Registered for these exception classes only, so the casts hold.
async def _api_error(request: Request, error: Exception) -> JSONResponse:
    return cast(ApiError, error).response()


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    return _validation_failure(cast(RequestValidationError, error).errors()).response()


# ---------------------------------------------------------------------------------------------
# The web pages (shipped as static files in the package)


def _add_page_routes(app: FastAPI) -> None:
    app.add_api_route("/", index_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/runs", runs_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", docs_page, methods=["GET"], include_in_schema=False)


async def index_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


async def runs_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "runs.html")


async def docs_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "docs.html")


# ---------------------------------------------------------------------------------------------
# Probes for orchestrators and monitoring: liveness, readiness, Prometheus metrics


def _add_probe_routes(app: FastAPI) -> None:
    app.add_api_route("/health", health, methods=["GET"], summary="the process is up")
    app.add_api_route("/ready", ready, methods=["GET"], summary="every model is loaded and accepting requests")
    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], summary="Prometheus metrics", response_class=PlainTextResponse)


async def health() -> dict[str, str]:
    return {"status": "ok"}


async def ready(request: Request) -> JSONResponse:
    serving = _serving(request)
    if not serving.ready:
        return JSONResponse({"status": "not ready", "models": []}, status_code=503)
    return JSONResponse({"status": "ready", "models": list(serving.by_name)})


async def prometheus_metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_serving(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


# ---------------------------------------------------------------------------------------------
# Predictions: what is served, one batched prediction, a stream of outputs

# The body is parsed by the routes rather than by FastAPI so that JSON is accepted whatever the
# Content-Type (`curl -d` sends form encoding); the schema still appears in the OpenAPI docs.
_PREDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}}


def _add_prediction_routes(app: FastAPI) -> None:
    app.add_api_route("/v1/models", list_models, methods=["GET"], summary="the served models and what their inputs hold")
    app.add_api_route(
        "/v1/predict",
        predict,
        methods=["POST"],
        summary="predict with a served model (requests arriving together share a forward pass)",
        openapi_extra=_PREDICT_BODY,
    )
    app.add_api_route(
        "/v1/stream",
        stream,
        methods=["POST"],
        summary="stream a model's outputs as they are produced (newline-delimited JSON), for models that stream",
        openapi_extra=_PREDICT_BODY,
    )


async def list_models(request: Request) -> dict[str, Any]:
    serving = _serving(request)
    limits = serving.limits
    return {
        "models": [model.describe() for model in serving.models],
        "limits": {"max_inputs": limits.max_inputs, "max_chars": limits.max_chars, "max_batch_size": limits.max_batch_size},
    }


async def predict(request: Request) -> JSONResponse:
    serving = _serving(request)
    metrics, started, label = serving.metrics, time.monotonic(), UNKNOWN_MODEL_LABEL
    try:
        body = _parse_predict_request(await _read_body(request))
        model = _pick_model(body.model, serving.by_name)
        label = model.name
        records = _checked_records(body, model, serving.limits)
        outputs = await _run_batched(serving, model, records, body.options)
    except ApiError as error:
        metrics.requests.inc(label, str(error.status))
        metrics.errors.inc(label, error.code)
        if label in serving.by_name:
            metrics.latency.observe(label, value=time.monotonic() - started)
        raise
    metrics.requests.inc(model.name, "200")
    metrics.examples.inc(model.name, amount=len(records))
    metrics.latency.observe(model.name, value=time.monotonic() - started)
    return JSONResponse({"model": model.name, "outputs": outputs})


async def stream(request: Request) -> StreamingResponse:
    serving = _serving(request)
    metrics, label, limits = serving.metrics, UNKNOWN_MODEL_LABEL, serving.limits
    try:
        body = _parse_predict_request(await _read_body(request))
        model = _pick_model(body.model, serving.by_name)
        label = model.name
        records = _checked_records(body, model, serving.limits, streaming=True)
        executor = serving.executor  # set once the server started (ready); kept while it stops
        if not serving.ready or executor is None:
            raise ApiError(
                503, "shutting_down", "the server is not accepting requests", headers={"Retry-After": str(limits.retry_after_seconds)}
            )
    except ApiError as error:
        metrics.requests.inc(label, str(error.status))
        metrics.errors.inc(label, error.code)
        raise
    metrics.requests.inc(model.name, "200")
    metrics.examples.inc(model.name, amount=len(records))
    lines = _stream_lines(model, records, body.options, executor, serving.device)
    return StreamingResponse(lines, media_type="application/x-ndjson")


def _checked_records(body: PredictRequest, model: ServedModel, limits: ServeLimits, streaming: bool = False) -> list[dict[str, Any]]:
    """The request's inputs as records for `model`, with its options checked; an ApiError saying what is wrong otherwise."""
    records = _checked_inputs(body.inputs, limits)
    if streaming and not model.streams:
        raise ApiError(422, "streaming_unsupported", f"model {model.name} ({model.task}) does not stream its outputs; use /v1/predict")
    try:
        model.check_options(body.options)
    except PrefineError as error:
        raise ApiError(422, "invalid_option", str(error)) from None
    return records


async def _run_batched(serving: ServingState, model: ServedModel, records: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
    """The model's outputs from its batcher, which shares a forward pass between requests arriving together."""
    limits = serving.limits
    try:
        return await serving.batchers[model.name].submit(records, options)
    except QueueFull:
        raise ApiError(
            503,
            "queue_full",
            f"model {model.name} has {limits.max_queue} requests waiting (--max-queue); retry shortly",
            "max_queue",
            {"Retry-After": str(limits.retry_after_seconds)},
        ) from None
    except ServerClosing:
        raise ApiError(
            503, "shutting_down", "the server is shutting down", headers={"Retry-After": str(limits.retry_after_seconds)}
        ) from None
    except PrefineError as error:
        raise ApiError(422, "invalid_input", str(error)) from None
    except Exception as error:
        logger.exception("prediction failed for model %s", model.name)
        raise ApiError(500, "internal_error", f"the model failed on this request ({type(error).__name__}); see the server log") from None


async def _stream_lines(model: ServedModel, records: list[dict[str, Any]], options: dict[str, Any], executor: ThreadPoolExecutor, device):
    """The predictor's `stream_records` events as JSON lines; each step runs on the inference thread,
    so a stream takes turns with the batched forward passes instead of competing with them."""
    import torch

    events = iter(model.predictor.stream_records(records, **options))
    finished = object()

    def next_event():
        with torch.inference_mode(), autocast_context(device, "auto"):
            return next(events, finished)

    loop = asyncio.get_running_loop()
    while True:
        try:
            event = await loop.run_in_executor(executor, next_event)
        except PrefineError as error:
            yield json.dumps({"error": str(error), "code": "invalid_input"}, ensure_ascii=False) + "\n"
            return
        except Exception as error:
            logger.exception("streaming failed for model %s", model.name)
            yield (
                json.dumps(
                    {"error": f"the model failed on this request ({type(error).__name__}); see the server log", "code": "internal_error"}
                )
                + "\n"
            )
            return
        if event is finished:
            return
        yield json.dumps(event, ensure_ascii=False) + "\n"


def _validation_failure(problems: Sequence[Any]) -> ApiError:
    first = problems[0] if problems else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return ApiError(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}; see /docs for the request format")


def _parse_predict_request(raw: bytes) -> PredictRequest:
    try:
        payload = json.loads(raw)
    except ValueError:  # includes bytes that are not UTF-8
        raise ApiError(
            400, "invalid_json", 'the request body is not valid JSON; send an object such as {"model": ..., "inputs": [...]}'
        ) from None
    try:
        return PredictRequest.model_validate(payload)
    except ValidationError as error:
        raise _validation_failure(error.errors()) from None


def _pick_model(name: str | None, by_name: dict[str, ServedModel]) -> ServedModel:
    if name is None:
        if len(by_name) == 1:
            return next(iter(by_name.values()))
        raise ApiError(422, "model_required", f'several models are served; name one in "model": {", ".join(by_name)}')
    if name not in by_name:
        raise ApiError(404, "unknown_model", f"no model named {name!r} is served; served: {', '.join(by_name)} (GET /v1/models)")
    return by_name[name]


def _checked_inputs(inputs: list[str | dict[str, Any]], limits: ServeLimits) -> list[dict[str, Any]]:
    """The inputs as records, within the per-request limits (413 naming the limit otherwise)."""
    if not inputs:
        raise ApiError(422, "invalid_request", "inputs is empty; send at least one input")
    if len(inputs) > limits.max_inputs:
        raise ApiError(
            413,
            "too_many_inputs",
            f"{len(inputs)} inputs in one request, more than this server's {limits.max_inputs} (--max-inputs); split the request",
            "max_inputs",
        )
    records = []
    for index, item in enumerate(inputs, start=1):
        record = {"text": item} if isinstance(item, str) else item
        for key, value in record.items():
            if isinstance(value, str) and len(value) > limits.max_chars:
                raise ApiError(
                    413,
                    "text_too_long",
                    f"input {index}: {key} has {len(value)} characters, more than this server's {limits.max_chars} (--max-chars)",
                    "max_chars",
                )
        records.append(record)
    return records


def _version() -> str:

    return __version__
