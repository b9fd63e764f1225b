"""Optional OpenTelemetry spans, with the SDK installed: the request's server span (FastAPI's, joined to the
caller's trace) carries the gateway's request id, key, model and task, and the upstream calls the request
made are client spans inside it; nothing is made without the SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from imagegate.observe import Tracing
from tests.money_support import InProcess, in_process

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # the global provider is set once per process
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture()
async def gw(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path) as g:
        EXPORTER.clear()
        yield g


async def test_a_request_is_a_server_span_with_its_upstream_calls_inside(gw: InProcess) -> None:
    _, h = await gw.key()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    body = {"model": "dall-e-2", "prompt": "a traced cat", "size": "256x256", "response_format": "b64_json"}
    r = await gw.http.post("/v1/images/generations", headers={**h, **parent}, json=body)
    assert r.status_code == 200, r.text
    spans = EXPORTER.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER and (s.attributes or {}).get("server.address") == "gw"]
    assert server.name == "POST /v1/images/generations"
    assert format(server.context.trace_id, "032x") == trace_id  # joined the caller's trace
    [handler] = [s for s in spans if (s.attributes or {}).get("imagegate.task_id")]  # what the gateway added
    attrs = dict(handler.attributes or {})
    assert attrs["imagegate.request_id"] == r.headers["x-request-id"] and attrs["imagegate.model"] == "dall-e-2"
    assert attrs["imagegate.task_id"] == r.headers["x-imagegate-task-id"]
    assert handler.context.trace_id == server.context.trace_id
    [call] = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert call.name == "call openai" and dict(call.attributes or {})["imagegate.provider"] == "openai"
    assert call.context.trace_id == server.context.trace_id and call.parent is not None  # inside the request


async def test_no_secret_reaches_a_span(gw: InProcess) -> None:
    _, h = await gw.key()
    bad = await gw.http.post("/v1/images/generations", headers={"authorization": "Bearer ig-wrong"}, json={})
    assert bad.status_code == 401
    body = {"model": "test/test", "prompt": "x", "size": "64x64"}
    assert (await gw.http.post("/v1/images/generations", headers=h, json=body)).status_code == 200
    seen = repr([dict(s.attributes or {}) for s in EXPORTER.get_finished_spans()])
    assert "ig-wrong" not in seen and h["authorization"].split()[1] not in seen


def test_without_the_sdk_nothing_is_made() -> None:
    off = Tracing(enabled=False)
    assert off.tracer is None
    off.upstream("openai", "d", "call", 0.1, None)  # a no-op, not an error
    assert Tracing().tracer is not None  # the SDK is installed in the test environment
