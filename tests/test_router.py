"""Routing under fault injection: retries, Retry-After, fallback order, breaker, concurrency, no fallback on 400."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.catalog import Catalog, builtin_specs
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, ImageRequest, UpstreamError
from imagegate.engine.limits import Breaker
from imagegate.engine.router import Router
from imagegate.providers.base import Deployment
from imagegate.testing.fakes.common import FakeState, create_fake


class Fakes:
    """A separate OpenAI fake per deployment id, with in-flight tracking."""

    def __init__(self) -> None:
        self.states: dict[str, FakeState] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def client_for(self, dep: Deployment) -> httpx.AsyncClient:
        if dep.id not in self.clients:
            app, state = create_fake("openai", FakeState(delay_ms=0))
            self.states[dep.id] = state
            fakes = self

            class Counting(httpx.ASGITransport):
                async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                    fakes.in_flight += 1
                    fakes.max_in_flight = max(fakes.max_in_flight, fakes.in_flight)
                    try:
                        return await super().handle_async_request(request)
                    finally:
                        fakes.in_flight -= 1

            self.clients[dep.id] = httpx.AsyncClient(transport=Counting(app=app))
        return self.clients[dep.id]

    def state(self, dep_id: str) -> FakeState:
        return self.states[dep_id]


def model_with(*deps: dict[str, Any]) -> Any:
    spec = ModelSpec.model_validate(
        {
            "id": "m",
            "capabilities": ["generate"],
            "sizes": ["1024x1024"],
            "max_n": 4,
            "price": {"per_image": 0.01},
            "deployments": [
                {"provider": "openai", "model": "gpt-image-1", "credentials": {"api_key": "K"}, **d} for d in deps
            ],
        }
    )
    return Catalog([spec], env={"K": "sandbox-key"}).get("m")


def req(prompt: str = "a cat", **kw: Any) -> ImageRequest:
    return ImageRequest(model="m", prompt=prompt, width=1024, height=1024, **kw)


async def noop(*_: Any) -> None:
    return None


def fail_with(status: int, body: dict | None = None, headers: dict | None = None):  # type: ignore[no-untyped-def]
    def script(_: Request) -> Response:
        return JSONResponse(
            body or {"error": {"message": f"scripted {status}", "type": "server_error", "param": None, "code": None}},
            status,
            headers=headers,
        )

    return script


@pytest.fixture()
def fakes() -> Fakes:
    return Fakes()


async def test_retry_after_honoured_then_success(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router(fakes, retries=2, backoff=0.0)
    slept: list[float] = []
    real_sleep = asyncio.sleep
    monkeypatch.setattr("imagegate.engine.router.asyncio.sleep", lambda s: slept.append(s) or real_sleep(0))
    model = model_with({"id": "a"})
    fakes.client_for(model.deployments[0])
    fakes.state("a").script.append(fail_with(429, headers={"retry-after": "7"}))
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "a" and len(out.result.images) == 1
    assert [a.get("status") for a in out.attempts] == [429, None]
    assert slept == [7.0]  # waited exactly what the upstream asked
    assert fakes.state("a").calls["generations"] == 2


async def test_5xx_retries_then_falls_back_in_order(fakes: Fakes) -> None:
    router = Router(fakes, retries=1, backoff=0.0)
    model = model_with({"id": "a"}, {"id": "b"}, {"id": "c"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("a").script += [fail_with(500), fail_with(503)]
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "b"
    assert [a["deployment"] for a in out.attempts] == ["a", "a", "b"]
    assert fakes.state("c").calls["generations"] == 0


async def test_upstream_calls_and_errors_are_measured_per_deployment(fakes: Fakes) -> None:
    """Every attempt lands in the latency histogram of its deployment; failures also count by code."""
    from imagegate.observe import Metrics

    metrics = Metrics()
    router = Router(fakes, retries=1, backoff=0.0, metrics=metrics)
    model = model_with({"id": "a"}, {"id": "b"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("a").script += [fail_with(500), fail_with(503)]
    await router.run(model, req(), on_submit=noop, on_progress=noop)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, {"provider": "openai", **labels}) or 0.0

    assert sample("imagegate_upstream_call_seconds_count", deployment="a", op="call") == 2
    assert sample("imagegate_upstream_call_seconds_count", deployment="b", op="call") == 1
    assert sample("imagegate_upstream_errors_total", deployment="a", code="upstream_error") == 1
    assert sample("imagegate_upstream_errors_total", deployment="a", code="upstream_unavailable") == 1
    assert sample("imagegate_upstream_errors_total", deployment="b", code="upstream_error") == 0


async def test_timeout_and_slow_upstream_fall_back(fakes: Fakes) -> None:
    router = Router(fakes, retries=0, backoff=0.0)
    model = model_with({"id": "slow", "timeout": 0.05}, {"id": "fast"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("slow").delay_ms = 2000
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "fast"
    assert out.attempts[0]["error"] == ErrorCode.upstream_timeout.value


@pytest.mark.parametrize(
    "status,body,code",
    [
        (
            400,
            {"error": {"message": "bad size", "type": "invalid_request_error", "param": "size", "code": None}},
            ErrorCode.upstream_bad_request,
        ),
        (
            400,
            {
                "error": {
                    "message": "safety",
                    "type": "image_generation_user_error",
                    "param": None,
                    "code": "moderation_blocked",
                }
            },
            ErrorCode.content_policy_violation,
        ),
    ],
)
async def test_no_retry_no_fallback_on_caller_mistake_or_moderation(
    fakes: Fakes, status: int, body: dict, code: ErrorCode
) -> None:
    router = Router(fakes, retries=3, backoff=0.0)
    model = model_with({"id": "a"}, {"id": "b"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("a").script.append(fail_with(status, body))
    with pytest.raises(UpstreamError) as e:
        await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert e.value.code == code
    assert fakes.state("a").calls["generations"] == 1
    assert fakes.state("b").calls["generations"] == 0


async def test_moderation_trigger_in_prompt_is_final(fakes: Fakes) -> None:
    router = Router(fakes, retries=3, backoff=0.0)
    model = model_with({"id": "a"}, {"id": "b"})
    with pytest.raises(UpstreamError) as e:
        await router.run(model, req("x [sandbox:moderated]"), on_submit=noop, on_progress=noop)
    assert e.value.code == ErrorCode.content_policy_violation
    assert "b" not in fakes.states or fakes.state("b").calls["generations"] == 0


async def test_breaker_opens_skips_and_half_opens(fakes: Fakes) -> None:
    router = Router(fakes, retries=0, backoff=0.0, breaker_threshold=2, breaker_cooldown=0.2)
    model = model_with({"id": "a"}, {"id": "b"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("a").script += [fail_with(500), fail_with(500)]
    for _ in range(2):
        assert (await router.run(model, req(), on_submit=noop, on_progress=noop)).deployment.id == "b"
    assert router.breakers["a"].state() == "open"
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "b" and out.attempts[0] == {"deployment": "a", "skipped": "circuit open"}
    assert fakes.state("a").calls["generations"] == 2  # not called while open
    await asyncio.sleep(0.25)
    assert router.breakers["a"].state() == "half_open"
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)  # the probe succeeds
    assert out.deployment.id == "a" and router.breakers["a"].state() == "closed"


def test_breaker_failed_probe_reopens() -> None:
    b = Breaker(threshold=1, cooldown=0.0)
    b.failure()
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()
    assert b.opened_at is not None and b.failures == 2


async def test_concurrency_limit_per_deployment(fakes: Fakes) -> None:
    router = Router(fakes, retries=0)
    model = model_with({"id": "a", "max_concurrency": 2})
    fakes.client_for(model.deployments[0])
    fakes.state("a").delay_ms = 30
    outs = await asyncio.gather(*(router.run(model, req(f"p{i}"), on_submit=noop, on_progress=noop) for i in range(6)))
    assert len(outs) == 6 and fakes.max_in_flight == 2


async def test_region_preference(fakes: Fakes) -> None:
    router = Router(fakes, retries=0)
    model = model_with({"id": "us", "region": "OverseaUSWest"}, {"id": "cn", "region": "Mainland"})
    out = await router.run(model, req(input_region="Mainland"), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "cn"
    out = await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert out.deployment.id == "us"


async def test_all_deployments_down_reports_last_error(fakes: Fakes) -> None:
    router = Router(fakes, retries=0, backoff=0.0)
    model = model_with({"id": "a"}, {"id": "b"})
    for d in model.deployments:
        fakes.client_for(d)
    fakes.state("a").script.append(fail_with(502))
    fakes.state("b").script.append(fail_with(429, headers={"retry-after": "3"}))
    with pytest.raises(UpstreamError) as e:
        await router.run(model, req(), on_submit=noop, on_progress=noop)
    assert e.value.code == ErrorCode.upstream_rate_limited and e.value.retry_after == 3.0


class LostAnswers(httpx.ASGITransport):
    """Hands each request to the fake, but loses the answer to the first ``lose`` creates (POSTs): the
    upstream accepted them, the gateway saw a timeout, as when a connection drops on the way back."""

    def __init__(self, app: Any, lose: int) -> None:
        super().__init__(app=app)
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and self.lose > 0:
            self.lose -= 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


async def test_a_submit_whose_answer_was_lost_is_looked_up_not_sent_again() -> None:
    from imagegate.testing.sandbox import Sandbox

    sandbox = Sandbox(delay_ms=0)
    app, state = sandbox.fake("kling")

    class Clients:
        def client_for(self, dep: Deployment) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=LostAnswers(app, lose=1))

    spec = next(s for s in builtin_specs() if any(d.provider == "kling" for d in s.deployments))
    model = Catalog([spec], env={"KLING_ACCESS_KEY": "sandbox-key", "KLING_SECRET_KEY": "sandbox-key"}).get(spec.id)
    assert model is not None
    router = Router(Clients(), retries=2, backoff=0.0, poll_interval=0.0)
    handles: list[dict[str, Any]] = []

    async def on_submit(_: Deployment, handle: dict[str, Any]) -> None:
        handles.append(handle)

    ask = ImageRequest(model=spec.id, prompt="a lighthouse", aspect_ratio="1:1")
    out = await router.run(model, ask, on_submit=on_submit, on_progress=noop, reference="ig-task_lost")
    assert len(out.result.images) == 1
    assert state.calls["submit"] == 1  # found by its reference after the timeout, not created twice
    assert [a.get("error") for a in out.attempts][:1] == ["upstream_timeout"] and out.attempts[1].get("found")
    assert handles and handles[0]["task_id"] in state.jobs
