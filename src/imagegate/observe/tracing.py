"""Optional OpenTelemetry spans for what happens upstream.

FastAPI already makes a server span per request (joined to the caller's ``traceparent``) once a tracer
provider is configured, e.g. with the OpenTelemetry SDK and ``OTEL_EXPORTER_OTLP_ENDPOINT``. This adds
what only the gateway knows: each upstream call (a generation, a submit, a poll) as a client span
inside the request's trace, and the request's id, key id, model and task id on the request's span.
With the SDK not installed nothing is made; a request pays a ``None`` check.

An upstream call's span is recorded when the call ends, from the times the router already measures
for the metrics, as a child of whatever span is current (the request's, for a sync request served in
the same process).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

_SDK = importlib.util.find_spec("opentelemetry.sdk") is not None


class Tracing:
    def __init__(self, enabled: bool | None = None) -> None:
        """``enabled``: None to trace exactly when the SDK is installed."""
        self.tracer: trace.Tracer | None = (
            trace.get_tracer("imagegate") if (_SDK if enabled is None else enabled) else None
        )

    def upstream(self, provider: str, deployment: str, op: str, seconds: float, error: str | None) -> None:
        """One finished upstream call (``op``: call or poll) as a client span."""
        if self.tracer is None:
            return
        end = time.time_ns()
        span = self.tracer.start_span(
            f"{op} {provider}",
            kind=SpanKind.CLIENT,
            start_time=end - int(seconds * 1e9),
            attributes={"imagegate.provider": provider, "imagegate.deployment": deployment, "imagegate.op": op},
        )
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)


def annotate(attributes: dict[str, Any]) -> None:
    """Put what a handler learnt (request id, key, model, task) on the current request span."""
    if _SDK:
        trace.get_current_span().set_attributes({k: v for k, v in attributes.items() if v is not None})
