"""Prometheus metrics of one app (its own registry: two apps in one process never share counters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """Requests, errors and latency by route; embedding and search time; the store's size at each scrape.

    Example:
        >>> metrics = ServeMetrics(store_size=lambda: 3)
        >>> metrics.observe("GET", "/health", 200, 0.002)
        >>> b'oml_serve_store_items 3.0' in metrics.render()[0]
        True
    """

    def __init__(self, store_size: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "oml_serve_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.errors = Counter(
            "oml_serve_errors", "HTTP answers with a 4xx or 5xx status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "oml_serve_request_duration_seconds", "time to answer a request", ["route"], buckets=_BUCKETS, registry=self.registry
        )
        self.embed = Histogram("oml_serve_embed_seconds", "time to embed query images", buckets=_BUCKETS, registry=self.registry)
        self.search = Histogram("oml_serve_search_seconds", "time to search the store", buckets=_BUCKETS, registry=self.registry)
        size = Gauge("oml_serve_store_items", "items in the embedding store", registry=self.registry)
        size.set_function(lambda: float(store_size()))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def observe_timing(self, timing: Any) -> None:
        if timing.embed_s:
            self.embed.observe(timing.embed_s)
        self.search.observe(timing.search_s)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
