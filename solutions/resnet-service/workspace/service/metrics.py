"""What Prometheus scrapes from /metrics: traffic, latency, predictions, errors and the model served.

Each application gets its own registry, so tests can create many apps in one process without
"Duplicated timeseries" errors, and an app's counters start from zero.

Under gunicorn with several workers, each worker is a process with its own counters, and a scrape
reaches one of them. With PROMETHEUS_MULTIPROC_DIR set (before prometheus_client is imported),
every worker writes its values to files in that folder, and /metrics adds up the files of all
workers: the answer then speaks for the whole service (step 06).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

# Seconds. A CPU ResNet50 answers in tens to hundreds of milliseconds; the buckets bracket that.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics. Label values come from a closed set (route templates, status codes,
    problem kinds), never from raw URLs or user input: every distinct label value is a new time
    series, and a scanner requesting random paths must not be able to blow up Prometheus."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter("predictions", "Images classified", registry=self.registry)
        self.inference = Histogram(
            "model_inference_seconds", "Time the model took per image", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.errors = Counter("errors", "Error responses, by problem type", ["type"], registry=self.registry)
        self.model_info = Gauge(
            "model_info",
            "The model being served; the value is 1 once it is loaded",
            ["model", "weights_source", "random_weights"],
            registry=self.registry,
            multiprocess_mode="livemax",  # across live workers: 1 once one has loaded it
        )

    def observe_request(self, *, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, method=method, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a /metrics answer, in Prometheus' text format: this
        process's own metrics, or, in multiprocess mode, those of every worker added up."""
        if multiprocess_dir():
            registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client's docs say
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def multiprocess_dir() -> str | None:
    """The folder where workers write their metrics, when several processes share them."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def forget_worker(pid: int) -> None:
    """Drop the live gauges of a worker that exited (gunicorn's child_exit hook calls this)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
