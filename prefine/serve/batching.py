"""Dynamic batching for `prefine serve`: requests for one model that arrive close together share a forward pass.

Each served model has a `DynamicBatcher`. A request joins its bounded queue (full: `QueueFull`,
which the API answers with 503 and Retry-After instead of letting memory grow). A worker task
takes the oldest request and waits up to `max_wait` seconds from that request's arrival for
more, until the waiting inputs fill `max_batch_size`; then the whole batch goes through the
predictor's `predict_records` in one call (which length-groups its inputs, as `prefine predict`
does). While a batch runs, new requests queue up, and the next batch starts as soon as the
previous one ends if its oldest request has already waited `max_wait`.

Only requests with the same options (e.g. fill-mask's top_k) share a batch, since
`predict_records` takes options per call. If a batch fails, its requests are run one by one,
so a request with bad input gets its own error and never takes the others in its batch down.

Forward passes run on one inference thread shared by all models: on a CPU, two models running
at once would only split the same cores between them, and the event loop stays free to accept
and queue requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prefine.serve.metrics import ServerMetrics

logger = logging.getLogger(__name__)

# Runs a list of records with the given options through a model; returns one result per record.
PredictFunction = Callable[[list[dict[str, Any]], dict[str, Any]], list[Any]]


class QueueFull(Exception):
    """The model's queue holds --max-queue requests already; the client should retry later."""


class ServerClosing(Exception):
    """The server is shutting down and takes no new requests."""


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    options: dict[str, Any]
    options_key: tuple
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


def options_key(options: dict[str, Any]) -> tuple:
    """A hashable identity of a request's options: equal options may share a batch."""
    return tuple(sorted((key, repr(value)) for key, value in options.items()))


class DynamicBatcher:
    """The queue and batching worker of one served model. Create, `start()` on the serving loop, submit, `close()`."""

    def __init__(
        self,
        name: str,
        predict: PredictFunction,
        executor: ThreadPoolExecutor,
        metrics: ServerMetrics,
        max_batch_size: int,
        max_wait_seconds: float,
        max_queue: int,
    ):
        self.name = name
        self.predict = predict
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self.max_queue = max_queue
        self.pending: deque[_Pending] = deque()
        self.closing = False
        self._arrival: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0

    def start(self) -> None:
        self.closing = False
        self._arrival = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")
        self._publish_depth()

    async def submit(self, records: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
        """The predictions for `records` once their batch has run; raises the predictor's error for bad input."""
        if self.closing or self._arrival is None:
            raise ServerClosing()
        if len(self.pending) >= self.max_queue:
            raise QueueFull()
        pending = _Pending(records, options, options_key(options), asyncio.get_running_loop().create_future())
        self.pending.append(pending)
        self._publish_depth()
        self._arrival.set()
        return await pending.future

    async def close(self) -> None:
        """Stop taking requests, answer every queued one (without waiting for more), then end the worker."""
        self.closing = True
        if self._arrival is not None:
            self._arrival.set()
        if self._worker is not None:
            await self._worker

    # -----------------------------------------------------------------------------------------

    def _publish_depth(self) -> None:
        self.metrics.queue_depth.set(self.name, value=len(self.pending))

    def _waiting_examples(self, key: tuple) -> int:
        return sum(len(item.records) for item in self.pending if item.options_key == key)

    async def _run(self) -> None:
        assert self._arrival is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                if self.closing:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            oldest = self.pending[0]
            deadline = oldest.arrived + self.max_wait_seconds
            while not self.closing and self._waiting_examples(oldest.options_key) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take_batch(oldest.options_key)
            self._publish_depth()
            if not batch:
                continue
            self.metrics.in_flight.set(self.name, value=len(batch))
            outcomes = await loop.run_in_executor(self.executor, self._run_batch, batch)
            self.metrics.in_flight.set(self.name, value=0)
            for item, (ok, value) in zip(batch, outcomes):
                if item.future.done():  # the client went away while its batch ran
                    continue
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)

    def _take_batch(self, key: tuple) -> list[_Pending]:
        """The oldest requests with options `key`, up to max_batch_size inputs (always at least the oldest)."""
        batch: list[_Pending] = []
        examples = 0
        kept: deque[_Pending] = deque()
        while self.pending:
            item = self.pending.popleft()
            if item.future.done():  # cancelled while it waited: nobody reads the answer
                continue
            fits = not batch or examples + len(item.records) <= self.max_batch_size
            if item.options_key == key and fits:
                batch.append(item)
                examples += len(item.records)
            else:
                kept.append(item)
        self.pending = kept
        return batch

    def _run_batch(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """(succeeded, results or exception) per request; runs on the inference thread."""
        records = [record for item in batch for record in item.records]
        self.metrics.batch_size.observe(self.name, value=len(records))
        self.batches_run += 1
        try:
            results = self.predict(records, batch[0].options)
            if len(results) != len(records):
                raise RuntimeError(f"the predictor returned {len(results)} results for {len(records)} inputs")
        except Exception as error:
            if len(batch) == 1:
                return [(False, error)]
            # One request's bad input fails the whole call; run them apart so only that one fails.
            return [outcome for item in batch for outcome in self._run_batch([item])]
        outcomes, start = [], 0
        for item in batch:
            outcomes.append((True, results[start : start + len(item.records)]))
            start += len(item.records)
        return outcomes
