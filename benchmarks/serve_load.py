"""Load on `prefine serve` against a naive server: throughput, latency, errors and memory under concurrent clients.

Both servers serve the same model on loopback with the same threads, each in its own process:

  prefine  `prefine serve RUN` (dynamic batching: requests arriving together share one forward
           pass; bounded queue, 503 + Retry-After beyond --max-queue).
  naive    transformers' `pipeline("text-classification")` on RUN's `prefine export`, behind the
           same framework (FastAPI + uvicorn), one request at a time (what a user writes first).

The run is a `mini` classifier made by `prefine finetune --from-scratch` for one step on SST-2
sentences (its accuracy is irrelevant here; its size and its inputs are what count). Every request
carries one SST-2 dev sentence, as an application asking about one text would. For each level of
concurrency (bounded clients, each sending its next request as soon as the previous one is
answered, a fixed number of requests in all, so a level ends by itself) the table shows answered
requests/s, client-side p50/p99 latency of the answered requests, non-200 answers, and the
server's RSS before and after the level. Each server goes through all levels --passes times
(default 2) in one process; the RSS after each pass shows whether memory stays flat once the
largest batches have been seen. The clients run in this process with a minimal HTTP/1.1 keep-alive client over asyncio streams,
so they cost both sides the same (little) CPU.

The last level (default 128 clients) is twice prefine's --max-queue plus what one batch takes,
so some of its requests find the queue full: they are answered 503 at once and counted as errors
(the client then waits the Retry-After second, as a well-behaved client does), the rest keep
their latency. The naive server has no queue bound: its clients just wait.

    python benchmarks/serve_load.py --clients 1 8 32 128 --requests 512 --passes 2 --repeats 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    add_common_arguments,
    against_strongest_anchor,
    benchmark_tokenizer,
    markdown_table,
    print_json,
    require_bench_dependencies,
    versions,
    write_results,
)

require_bench_dependencies("transformers", "psutil", "fastapi", "uvicorn")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from finetune_throughput import DEFAULT_SST2, read_sst2  # noqa: E402
from inference_throughput import exported_classifier, write_tsv  # noqa: E402

# The naive server: the pipeline behind FastAPI, one request at a time (an async route that
# calls the pipeline directly holds the event loop, so requests queue in uvicorn unboundedly).
NAIVE_SERVER = """
import sys, torch, uvicorn
from fastapi import FastAPI
from transformers import pipeline
model, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
classifier = pipeline("text-classification", model=model, device="cpu", top_k=None)
app = FastAPI()

@app.get("/ready")
async def ready():
    return {"status": "ready"}

@app.post("/v1/predict")
async def predict(body: dict):
    results = classifier(body["inputs"], truncation=True, max_length=128)
    outputs = []
    for r in results:
        outputs.append({"label": max(r, key=lambda x: x["score"])["label"], "probabilities": {x["label"]: x["score"] for x in r}})
    return {"outputs": outputs}

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with status {process.returncode}; see its log in --work-dir")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"GET /ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if connection.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server on port {port} not ready after {timeout:.0f} s")


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> tuple[int, float]:
    """One POST /v1/predict on a kept-alive connection: (status code, Retry-After seconds or 0); the body is read and dropped."""
    writer.write(
        b"POST /v1/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    status_line = await reader.readline()
    length, retry_after = 0, 0.0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"retry-after":
            retry_after = float(value)
    await reader.readexactly(length)
    return int(status_line.split()[1]), retry_after


async def load_level(port: int, model: str, texts: list[str], clients: int, total: int) -> dict:
    """`clients` connections sending `total` requests between them; latencies and status counts."""
    bodies = [json.dumps({"model": model, "inputs": [texts[index % len(texts)]]}).encode() for index in range(total)]
    next_index = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < total:
                body = bodies[next_index]
                next_index += 1
                start = time.perf_counter()
                retry_after = 0.0
                try:
                    status, retry_after = await request(reader, writer, body)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 0  # the server dropped the connection: an error, reconnect
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if status == 200:  # a 503 is answered at once: counted as an error, not as a latency
                    latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if retry_after:
                    await asyncio.sleep(retry_after)  # a well-behaved client backs off as told
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - start
    ok = statuses.get(200, 0)
    return {
        "clients": clients,
        "requests": total,
        "seconds": seconds,
        "ok_per_s": ok / seconds,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "errors": total - ok,
        "statuses": {str(key): value for key, value in sorted(statuses.items())},
    }


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def run_side(
    name: str,
    command: list[str],
    port: int,
    model: str,
    texts: list[str],
    levels: list[int],
    requests: int,
    passes: int,
    environment: dict,
    log: Path,
) -> tuple[list[dict], list[float]]:
    """One server process through every level `passes` times: the level results, and its RSS after warm-up and after each pass."""
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, process)
        asyncio.run(load_level(port, model, texts, 4, 32))  # warm-up: first calls, allocator, thread pools
        results, memory = [], [rss_mb(process.pid)]
        for pass_index in range(passes):
            for clients in levels:
                before = rss_mb(process.pid)
                result = asyncio.run(load_level(port, model, texts, clients, max(requests, 2 * clients)))
                result.update(side=name, rss_before_mb=before, rss_after_mb=rss_mb(process.pid), server_pass=pass_index)
                results.append(result)
                print(
                    f"{name:8s} pass {pass_index} {clients:4d} clients: {result['ok_per_s']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
                    f"p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}  RSS {before:.0f} -> {result['rss_after_mb']:.0f} MB",
                    file=sys.stderr,
                )
            memory.append(rss_mb(process.pid))
        return results, memory
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, steps=1, repeats=1)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128], help="concurrency levels")
    parser.add_argument("--requests", type=int, default=512, help="requests per level (at least twice the clients)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="prefine serve --max-batch-size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="prefine serve --max-wait-ms")
    parser.add_argument("--max-queue", type=int, default=32, help="prefine serve --max-queue (the last level is meant to exceed it)")
    parser.add_argument(
        "--passes", type=int, default=2, help="passes through all levels per server process (later passes show whether RSS stays flat)"
    )
    parser.add_argument("--sst2-dir", type=Path, default=DEFAULT_SST2, help="folder with SST-2's dev.tsv")
    args = parser.parse_args()
    dev_file = args.sst2_dir / "dev.tsv"
    if not dev_file.is_file():
        print(f"skipped: SST-2 not found at {dev_file}; pass --sst2-dir pointing at a folder with dev.tsv (columns label, sentence)")
        return
    work_dir = args.work_dir
    texts, labels = read_sst2(dev_file)
    tokenizer, _ = benchmark_tokenizer(work_dir, args.vocab_size)
    _, init_export = exported_classifier(tokenizer, work_dir, args.preset, args.seed)

    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    run_dir, export_dir = work_dir / "serve-load-run", work_dir / "serve-load-export"
    for folder in (run_dir, export_dir):
        shutil.rmtree(folder, ignore_errors=True)
    train = write_tsv(work_dir / "serve-load-train.tsv", texts[:256], labels[:256])
    prefine = [sys.executable, "-m", "prefine"]
    for command in (
        [
            *prefine,
            "finetune",
            "--init",
            str(init_export),
            "--from-scratch",
            "--train",
            str(train),
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--out",
            str(run_dir),
            "--max-steps",
            "1",
            "--max-seq-length",
            "128",
            "--no-progress",
            "--registry",
            str(work_dir / "serve-load-registry.sqlite"),
        ],
        [*prefine, "export", str(run_dir), "--format", "hf", "--out", str(export_dir)],
    ):
        subprocess.run(command, check=True, env=environment, capture_output=True)

    sides = {
        "prefine": [
            *prefine,
            "serve",
            str(run_dir),
            "--port",
            "{port}",
            "--num-threads",
            str(args.threads),
            "--max-batch-size",
            str(args.max_batch_size),
            "--max-wait-ms",
            str(args.max_wait_ms),
            "--max-queue",
            str(args.max_queue),
        ],
        "naive": [sys.executable, "-c", NAIVE_SERVER, str(export_dir), "{port}", str(args.threads)],
    }
    results: list[dict] = []
    memory: dict[str, list[list[float]]] = {"prefine": [], "naive": []}
    for repeat in range(args.repeats):
        for name in ("prefine", "naive") if repeat % 2 == 0 else ("naive", "prefine"):
            port = free_port()
            command = [part.replace("{port}", str(port)) for part in sides[name]]
            log = work_dir / f"serve-load-{name}.log"
            side_results, side_memory = run_side(
                name, command, port, run_dir.name, texts, args.clients, args.requests, args.passes, environment, log
            )
            results += [{**result, "repeat": repeat} for result in side_results]
            memory[name].append(side_memory)

    def median_of(side: str, clients: int, key: str) -> float:
        return float(np.median([r[key] for r in results if r["side"] == side and r["clients"] == clients]))

    rows = []
    for clients in args.clients:
        for side in ("prefine", "naive"):
            rows.append(
                [
                    clients,
                    side,
                    median_of(side, clients, "ok_per_s"),
                    median_of(side, clients, "p50_ms"),
                    median_of(side, clients, "p99_ms"),
                    int(median_of(side, clients, "errors")),
                    f"{median_of(side, clients, 'rss_before_mb'):.0f} -> {median_of(side, clients, 'rss_after_mb'):.0f}",
                ]
            )
        speedup = median_of("prefine", clients, "ok_per_s") / max(median_of("naive", clients, "ok_per_s"), 1e-9)
        rows.append([clients, "**prefine / naive**", f"**{speedup:.2f}x**", "", "", "", ""])
    conditions = (
        f"{args.preset} classifier, 1 sentence per request, {args.requests} requests per level (at least 2x the clients), "
        f"{args.passes} passes, {args.threads} threads per server, prefine --max-batch-size {args.max_batch_size} "
        f"--max-wait-ms {args.max_wait_ms} --max-queue {args.max_queue}; median over {args.repeats} repeats x {args.passes} passes; "
        "clients on the same machine"
    )
    header = ["clients", "server", "ok requests/s", "p50 ms", "p99 ms", "errors", "server RSS MB"]
    print(f"\n{conditions}\n")
    print(markdown_table(header, rows))
    memory_lines = [f"{name}: " + "; ".join(" -> ".join(f"{value:.0f}" for value in run) for run in runs) for name, runs in memory.items()]
    print("\nServer RSS (MB) after warm-up, then after each pass through all levels, per repeat:")
    for line in memory_lines:
        print(f"  {line}")
    # The naive pipeline server is the one anchor side. The headline level is the busiest one prefine's queue holds
    # (--max-queue clients or fewer): beyond it prefine answers 503 by design, and the naive server has no bound.
    headlines = {
        clients: against_strongest_anchor({side: median_of(side, clients, "ok_per_s") for side in ("prefine", "naive")}, "ok requests/s")
        for clients in args.clients
    }
    for clients, level in headlines.items():
        level["text"] += f" ({clients} clients)"
    held = [clients for clients in args.clients if clients <= args.max_queue]
    headline = headlines[max(held) if held else args.clients[0]]
    record = {
        "benchmark": "serve_load",
        "preset": args.preset,
        "threads": args.threads,
        "requests": args.requests,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "max_queue": args.max_queue,
        "repeats": args.repeats,
        "passes": args.passes,
        "rss_mb": memory,
        "versions": versions(),
        "results": results,
        "headlines": {str(clients): level for clients, level in headlines.items()},
    }
    notes = ["Server RSS (MB) after warm-up, then after each pass through all levels, per repeat: " + "; ".join(memory_lines) + "."]
    write_results(args.results, "serve_load", header, rows, record, args.threads, conditions, headline, notes=notes)
    print_json(record)


if __name__ == "__main__":
    main()
