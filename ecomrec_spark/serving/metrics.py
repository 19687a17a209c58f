"""Prometheus metrics of one API app: request counts and latency per endpoint, fallbacks, events taken.

Why per app and per route template: each :func:`~ecomrec_spark.serving.api.create_app` gets its
own ``CollectorRegistry`` (tests build many apps in one process, and the default global registry
would refuse the second set of metrics), and requests are labelled by the route's template
(``/v1/customers/{customer_id}/recommendations``), never the raw path, so a million customer
ids make one time series, not a million.  The middleware is plain ASGI (no
``BaseHTTPMiddleware``), which keeps its cost per request to two clock reads.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

UNMATCHED = "<unmatched>"  # requests no route matched (404s of random paths), in one series
# seconds; the target is p99 <= 20 ms, so the buckets are fine below 50 ms
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """The collectors of one app, in their own registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ecomrec_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("ecomrec_http_request_duration_seconds", "request latency by route template",
                                 ["route", "method"], buckets=BUCKETS, registry=self.registry)
        self.fallbacks = Counter("ecomrec_recommendation_fallbacks", "unknown customers given a popularity list",
                                 registry=self.registry)
        self.events = Counter("ecomrec_events_accepted", "feedback events accepted and written",
                              registry=self.registry)
        self.rejected_batches = Counter("ecomrec_event_batches_rejected", "event batches refused with 422",
                                        registry=self.registry)
        self.live = Gauge("ecomrec_serving_live_version", "1 for the serving version the API reads",
                          ["version"], registry=self.registry)

    def set_live(self, version: str) -> None:
        self.live.clear()
        self.live.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count and time every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, method, str(status)).inc()
