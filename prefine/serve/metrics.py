"""Server metrics in the Prometheus text exposition format, for `prefine serve`'s /metrics.

Counters, gauges and histograms with labels, kept in memory and rendered on request. A few
dozen lines cover what the server reports (requests, errors, latency, batch sizes, queue depth,
which backend computes each model), so the serve extra does not need prometheus_client; the output follows the text format version
0.0.4 that every Prometheus-compatible scraper reads.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field

LabelValues = tuple[str, ...]

# Seconds: a tiny model answers in milliseconds, a large one on a busy CPU in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Examples per forward pass: powers of two up to the largest --max-batch-size anyone would use.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: tuple[str, ...], values: LabelValues, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = [*zip(names, values), *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class _Metric:
    name: str
    help: str
    kind: str  # counter, gauge or histogram
    label_names: tuple[str, ...]
    values: dict[LabelValues, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    def __init__(self, name: str, help: str, label_names: tuple[str, ...] = ()):
        super().__init__(name, help, "counter", label_names)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self.lock:
            self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        return self.header() + [
            f"{self.name}{_format_labels(self.label_names, key)} {_format_number(value)}" for key, value in sorted(self.values.items())
        ]


class Gauge(Counter):
    def __init__(self, name: str, help: str, label_names: tuple[str, ...] = ()):
        _Metric.__init__(self, name, help, "gauge", label_names)

    def set(self, *labels: str, value: float) -> None:
        with self.lock:
            self.values[labels] = float(value)


class Histogram(_Metric):
    def __init__(self, name: str, help: str, buckets: tuple[float, ...], label_names: tuple[str, ...] = ()):
        super().__init__(name, help, "histogram", label_names)
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, *labels: str, value: float) -> None:
        with self.lock:
            counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            # Bucket i counts observations <= buckets[i]; the last one is +Inf. Stored per bucket,
            # made cumulative when rendered.
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self.sums[labels] = self.sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self.counts.get(labels, ()))

    def render(self) -> list[str]:
        lines = self.header()
        for key in sorted(self.counts):
            cumulative = 0
            for bound, count in zip((*self.buckets, math.inf), self.counts[key]):
                cumulative += count
                lines.append(f"{self.name}_bucket{_format_labels(self.label_names, key, (('le', _format_number(bound)),))} {cumulative}")
            lines.append(f"{self.name}_sum{_format_labels(self.label_names, key)} {_format_number(self.sums[key])}")
            lines.append(f"{self.name}_count{_format_labels(self.label_names, key)} {cumulative}")
        return lines


class ServerMetrics:
    """Everything /metrics reports, labelled by served model name."""

    def __init__(self) -> None:
        self.requests = Counter("prefine_requests_total", "Prediction requests answered, by model and HTTP status code.", ("model", "code"))
        self.errors = Counter(
            "prefine_request_errors_total", "Prediction requests that did not succeed, by model and reason.", ("model", "reason")
        )
        self.examples = Counter("prefine_examples_total", "Inputs predicted, by model.", ("model",))
        self.latency = Histogram(
            "prefine_request_duration_seconds", "Time from a prediction request's arrival to its answer.", LATENCY_BUCKETS, ("model",)
        )
        self.batch_size = Histogram(
            "prefine_batch_size", "Inputs per forward pass (after dynamic batching).", BATCH_SIZE_BUCKETS, ("model",)
        )
        self.queue_depth = Gauge("prefine_queue_depth", "Requests waiting for a forward pass, by model.", ("model",))
        self.in_flight = Gauge("prefine_requests_in_flight", "Requests being predicted right now, by model.", ("model",))
        self.backend = Gauge(
            "prefine_model_backend",
            "1 for what computes each model's encoder (prefine serve --backend): torch, onnx or onnx-int8.",
            ("model", "backend"),
        )

    def render(self) -> str:
        metrics = (self.requests, self.errors, self.examples, self.latency, self.batch_size, self.queue_depth, self.in_flight, self.backend)
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"
