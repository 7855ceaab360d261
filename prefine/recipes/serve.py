"""`prefine serve`: put runs behind an HTTP API with dynamic batching, and a web page to try them.

Checks everything first (the serve extra is installed, the flags make sense, every run exists
under a unique name and can run on --backend, the port is free), then loads each run once and
serves until Ctrl-C or SIGTERM, which stop accepting connections, let the requests in flight
finish, and exit 0.
The app itself lives in `prefine.serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.inference import check_backend
from prefine.interop.onnx_runtime import BACKEND_HELP, Backend
from prefine.recipes.common import default_cache_dir
from prefine.registry import default_registry_path
from prefine.serve.models import RunReference, check_unique_names, load_served_model
from prefine.training import resolve_device

API_KEY_ENV_VAR = "PREFINE_API_KEY"


@dataclass
class ServeConfig:
    runs: list[str] = option([], "runs to serve: folders or registry names; NAME=RUN serves a run under another name", positional=True)
    host: str = option(
        "127.0.0.1",
        "interface to listen on; only this machine can connect by default. WARNING: another address (0.0.0.0) lets anyone who "
        "reaches the port use the models, and there is no authentication unless --api-key is set",
    )
    port: int = option(8000, "TCP port to listen on (0: any free port, printed at start)")
    api_key: str = option("", f"require this key ('Authorization: Bearer KEY' or 'X-API-Key: KEY') on the API; default: ${API_KEY_ENV_VAR}")
    max_batch_size: int = option(64, "most inputs one forward pass runs; requests arriving together are batched up to this")
    max_wait_ms: float = option(5.0, "how long the oldest waiting request waits for others to join its batch (milliseconds)")
    max_queue: int = option(256, "requests that may wait per model; beyond it the server answers 503 with Retry-After")
    max_inputs: int = option(64, "most inputs in one request (more: 413)")
    max_chars: int = option(10_000, "most characters in one text field of an input (more: 413)")
    device: str = option("auto", "cpu, cuda, cuda:1, ... or auto (CUDA when available)")
    num_threads: int = option(0, "CPU threads for PyTorch and ONNX Runtime (0: PyTorch's default)")
    backend: Backend = option("torch", BACKEND_HELP)
    registry: str = option("", "registry to look run names up in and to show on /runs (default: $PREFINE_REGISTRY or runs/registry.sqlite)")
    access_log: bool = option(False, "log every request (costs throughput under load)")

    def __post_init__(self) -> None:
        if not self.runs:
            raise PrefineError("name at least one run to serve, e.g. prefine serve runs/ko-sentiment")
        if not 0 <= self.port <= 65535:
            raise PrefineError(f"--port {self.port} must be between 0 and 65535")
        for flag, value in (
            ("--max-batch-size", self.max_batch_size),
            ("--max-queue", self.max_queue),
            ("--max-inputs", self.max_inputs),
            ("--max-chars", self.max_chars),
        ):
            if value < 1:
                raise PrefineError(f"{flag} {value} must be at least 1")
        if self.max_wait_ms < 0:
            raise PrefineError(f"--max-wait-ms {self.max_wait_ms} must not be negative")
        if self.num_threads < 0:
            raise PrefineError(f"--num-threads {self.num_threads} must not be negative")


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve runs over HTTP (JSON API with dynamic batching, a web page, Prometheus metrics)")
    add_dataclass_arguments(parser, ServeConfig)
    parser.set_defaults(func=serve_from_args)


def require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise PrefineError(f"prefine serve needs the serve extra ({error.name} is missing): pip install 'prefine[serve]'") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any model is loaded so a taken port fails at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise PrefineError(f"--host {host}: not an address of this machine ({error.strerror}); use 127.0.0.1 or 0.0.0.0") from None
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise PrefineError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port or stop what uses it") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_from_args(args: argparse.Namespace) -> int:
    config = from_args(ServeConfig, args)
    require_serve_extra()

    references = [RunReference.parse(argument, config.registry) for argument in config.runs]
    check_unique_names(references)
    for reference in references:
        check_backend(reference.run_dir, config.backend)
    device = resolve_device(config.device) if config.backend == "torch" else resolve_device("cpu")
    api_key = config.api_key or os.environ.get(API_KEY_ENV_VAR, "")
    sock = bind_socket(config.host, config.port)
    # oneDNN keeps compiled kernels for every input shape it has seen (up to 1,024); a server sees
    # a new shape with almost every batch, and that cache grew the RSS by ~20 MB per 40 batches
    # without settling in our load test. Without it RSS stays flat and batches were no slower on
    # CPU. It must be set before the first oneDNN call; an explicit setting wins.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    try:
        import torch

        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        models = []
        for reference in references:
            print(f"loading {reference.name} from {reference.run_dir}", file=sys.stderr, flush=True)
            models.append(load_served_model(reference, device, config.backend, default_cache_dir()))
        registry_path = Path(config.registry) if config.registry else default_registry_path(None)
        if not is_loopback(config.host) and not api_key:
            print(
                f"prefine: warning: listening on {config.host} without --api-key: anyone who can reach this port can use the models",
                file=sys.stderr,
            )
        return asyncio.run(_serve(models, config, api_key, registry_path, device, sock))
    finally:
        sock.close()


async def _serve(models, config: ServeConfig, api_key: str, registry_path: Path, device, sock: socket.socket) -> int:
    # The optional serve extra (FastAPI, uvicorn): imported only once the command has checked it is installed.
    import uvicorn

    from prefine.serve.app import ServeLimits, create_app

    limits = ServeLimits(config.max_batch_size, config.max_wait_ms, config.max_queue, config.max_inputs, config.max_chars)
    app = create_app(models, limits, api_key, registry_path, device)
    server = _GracefulServer(
        uvicorn.Config(app, log_level="warning", access_log=config.access_log, timeout_graceful_shutdown=30, lifespan="on")
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.request_stop, signum)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        names = ", ".join(f"{model.name} ({model.task})" for model in models)
        print(f"serving {names} on http://{shown}:{port}  (page: /, API docs: /docs; Ctrl-C stops)", file=sys.stderr, flush=True)
    await serving
    if not server.started:
        raise PrefineError("the server did not start; see the messages above")
    print("prefine serve: stopped", file=sys.stderr, flush=True)
    return 0


class _GracefulServer:
    """uvicorn's Server with prefine's signal handling: the first Ctrl-C/SIGTERM drains, a second one stops at once.

    uvicorn re-raises the signal it caught once it has shut down, which would end the process
    with status 130/143 after a clean drain; a drained shutdown is a success, so it exits 0.
    """

    def __init__(self, config):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        self.server = Server(config)

    @property
    def started(self) -> bool:
        return self.server.started

    async def serve(self, sockets) -> None:
        await self.server.serve(sockets=sockets)

    def request_stop(self, signum: int) -> None:
        if self.server.should_exit:
            self.server.force_exit = True
            return
        print(
            f"prefine serve: {signal.Signals(signum).name}: no new connections; finishing the requests in flight",
            file=sys.stderr,
            flush=True,
        )
        self.server.should_exit = True
