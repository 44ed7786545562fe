"""Prometheus metrics of one server, on a registry of its own (two servers in one process, as in the
tests, never share counters). The version served is a label wherever a number depends on it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    """Requests, errors, latency, tokens, queue depth, batch sizes, swaps and the served version."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("gitops_serve_requests", "HTTP requests answered.",
                                ["route", "status", "version"], registry=r)
        self.errors = Counter("gitops_serve_errors", "Requests answered with an error, by OpenAI error type.",
                              ["route", "type"], registry=r)
        self.latency = Histogram("gitops_serve_request_duration_seconds", "Time from request to last byte.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("gitops_serve_prompt_tokens", "Prompt tokens processed.",
                                     ["version"], registry=r)
        self.completion_tokens = Counter("gitops_serve_completion_tokens", "Tokens generated.",
                                         ["version"], registry=r)
        self.queue_depth = Gauge("gitops_serve_queue_depth", "Prompts waiting for the engine.", registry=r)
        self.batch_size = Histogram("gitops_serve_batch_size", "Prompts per engine call.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.model_info = Gauge("gitops_serve_model_info", "1 for the version being served.",
                                ["version", "md5", "format"], registry=r)
        self.dropped = Counter("gitops_serve_connections_dropped", "Connections closed by the server's bounds "
                               "(limit, evicted, head_timeout, body_timeout, send_timeout).", ["reason"], registry=r)
        self.accepted = Counter("gitops_serve_connections_accepted", "Client connections taken in.", registry=r)
        self.connections = Gauge("gitops_serve_connections", "Client connections open now.", registry=r)
        self.open_connections: Callable[[], int] | None = None  # set by the server that runs the app
        self.swaps = Counter("gitops_serve_swaps", "Model loads by result (swapped, unchanged, failed).",
                             ["result"], registry=r)

    def dropped_connection(self, reason: str) -> None:
        self.dropped.labels(reason).inc()

    def served(self, old: tuple[str, str, str] | None, new: tuple[str, str, str]) -> None:
        """Move the ``model_info`` mark from ``old`` to ``new`` (version, md5, format)."""
        if old is not None:
            with contextlib.suppress(KeyError):
                self.model_info.remove(*old)
        self.model_info.labels(*new).set(1)

    def exposition(self, queue_depth: int) -> bytes:
        self.queue_depth.set(queue_depth)
        if self.open_connections is not None:
            self.connections.set(self.open_connections())
        return generate_latest(self.registry)
