"""Request count and latency per route template, as a plain ASGI middleware.

A plain ASGI wrapper rather than Starlette's BaseHTTPMiddleware: it adds no task or
stream per request, which matters on the gateway's hot path.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit import metrics

# Paths no route matched (scanners, typos): one label value, so they cannot blow up cardinality.
UNMATCHED_ROUTE = "other"


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            route, method = route_template(scope), scope["method"]
            metrics.http_requests.labels(route, method, str(status)).inc()
            metrics.http_request_seconds.labels(route, method).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/orders/{order_id}`), never the raw path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE
