"""Pick a deployment, call it, retry what is retryable, fall back, and keep a breaker per deployment.

Rules:
- retry 429 / 5xx / timeouts / connection errors on the same deployment with backoff
  (honouring Retry-After), then fall back to the next deployment;
- never retry or fall back on a caller mistake (400-class) or a moderation outcome;
- a submit+poll job is submitted once: its handle is handed to ``on_submit`` (the runner
  stores it) before the first poll, and polling errors retry the poll, never the submit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from imagegate.catalog import CatalogModel, Deployment
from imagegate.domain import ErrorCode, ImageRequest, ProviderResult, UpstreamError
from imagegate.engine.limits import Breaker, BreakerBoard, Gates, LocalGates
from imagegate.observe import Metrics, Tracing
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.registry import provider_class

T = TypeVar("T")
OnSubmit = Callable[[Deployment, dict[str, Any]], Awaitable[None]]
OnSubmitting = Callable[[Deployment], Awaitable[None]]
OnProgress = Callable[[PollResult], Awaitable[None]]


class ClientSource(Protocol):
    def client_for(self, deployment: Deployment) -> httpx.AsyncClient: ...


@dataclass
class RouteOutcome:
    result: ProviderResult
    deployment: Deployment
    attempts: list[dict[str, Any]] = field(default_factory=list)


class Router:
    def __init__(
        self,
        clients: ClientSource,
        *,
        retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        poll_interval: float | None = None,
        max_poll_seconds: float = 900.0,
        board: BreakerBoard | None = None,
        gates: Gates | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``board`` and ``gates``: the circuits and concurrency caps, per process unless shared ones are given;
        ``metrics``: every upstream call's time and failure, by provider and deployment."""
        self.clients = clients
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval  # overrides deployments' (the sandbox polls fast)
        self.max_poll_seconds = max_poll_seconds
        self.board = board or BreakerBoard(breaker_threshold, breaker_cooldown)
        self.gates = gates or LocalGates()
        self.metrics = metrics or Metrics()
        self.tracing = tracing or Tracing(enabled=False)

    @property
    def breakers(self) -> dict[str, Breaker]:
        return self.board.breakers

    def provider(self, model: CatalogModel, dep: Deployment) -> Provider:
        return provider_class(dep.provider)(dep, model.spec, self.clients.client_for(dep))

    def plan(self, model: CatalogModel, req: ImageRequest) -> list[Deployment]:
        """Ready deployments in catalog order; the client's region first; weights shuffle equals."""
        ready = [d for d in model.deployments if d.ready]
        if any(d.weight != 1 for d in ready):
            ready = sorted(ready, key=lambda d: -(random.random() ** (1.0 / max(d.weight, 1))))
        if req.input_region:
            ready.sort(key=lambda d: d.region != req.input_region)
        return ready

    async def run(
        self,
        model: CatalogModel,
        req: ImageRequest,
        *,
        on_submit: OnSubmit,
        on_progress: OnProgress,
        on_submitting: OnSubmitting | None = None,
        resume: tuple[str, dict[str, Any]] | None = None,
        reference: str | None = None,
    ) -> RouteOutcome:
        """``on_submitting`` runs before each submit of a poll-kind job (the runner records it, so a
        process taking the task over knows a submit may have been accepted); ``on_submit`` gets the
        handle before the first poll; ``reference``: the task's client reference, given to each submit."""
        attempts: list[dict[str, Any]] = []
        if resume is not None:
            dep = next((d for d in model.deployments if d.id == resume[0]), None)
            if dep is not None:
                result = await self._poll_until_done(self.provider(model, dep), dep, resume[1], on_progress, on_submit)
                return RouteOutcome(result, dep, attempts)
        plan = self.plan(model, req)
        if not plan:
            raise UpstreamError(ErrorCode.upstream_unavailable, f"model '{model.id}' has no ready deployment")
        last: UpstreamError | None = None
        for dep in plan:
            breaker = self.board.get(dep.id)
            if not breaker.allow():
                attempts.append({"deployment": dep.id, "skipped": "circuit open"})
                last = last or UpstreamError(ErrorCode.upstream_unavailable, f"{dep.id}: circuit open")
                continue
            try:
                hooks = (on_submitting, on_submit, on_progress)
                result = await self._run_one(model, dep, req, hooks, attempts, reference)
            except UpstreamError as exc:
                last = exc
                if exc.may_fall_back:
                    self.board.failure(dep.id)
                else:
                    self.board.success(dep.id)  # the upstream answered sensibly; the request was the problem
                    raise
                continue
            except BaseException:
                breaker.probing = False
                raise
            self.board.success(dep.id)
            return RouteOutcome(result, dep, attempts)
        assert last is not None
        raise last

    async def _run_one(
        self,
        model: CatalogModel,
        dep: Deployment,
        req: ImageRequest,
        hooks: tuple[OnSubmitting | None, OnSubmit, OnProgress],
        attempts: list[dict[str, Any]],
        reference: str | None,
    ) -> ProviderResult:
        on_submitting, on_submit, on_progress = hooks
        provider = self.provider(model, dep)
        async with self.gates.hold(dep):
            if provider.kind == "sync":
                return await self._with_retries(dep, attempts, lambda: provider.generate_live(req, on_progress))
            if on_submitting is not None:
                await on_submitting(dep)
            handle = await self._submit(provider, dep, req, attempts, reference)
            await on_submit(dep, handle)
            return await self._poll_until_done(provider, dep, handle, on_progress, on_submit)

    async def find(
        self, model: CatalogModel, dep: Deployment, reference: str, req: ImageRequest
    ) -> dict[str, Any] | None:
        """Ask ``dep``'s upstream for the job submitted with ``reference`` (retried like a submit)."""
        provider = self.provider(model, dep)
        return await self._with_retries(dep, [], lambda: provider.find(reference, req))

    async def _submit(
        self, provider: Provider, dep: Deployment, req: ImageRequest, attempts: list[dict[str, Any]], ref: str | None
    ) -> dict[str, Any]:
        """Submit, retrying what is retryable; where the upstream can be asked for the job by ``ref``, ask it
        before each retry, since a submit whose answer was lost (a timeout, a dropped connection, a 5xx from
        a proxy) may have been accepted: a job found is polled, never sent again."""

        async def already_there() -> dict[str, Any] | None:
            if ref is None or provider.resubmit() != "lookup":
                return None
            try:
                async with asyncio.timeout(dep.timeout):
                    return await provider.find(ref, req)
            except (UpstreamError, TimeoutError):
                return None  # unknown: the retry goes out, and the upstream refuses a reference it already has

        return await self._with_retries(dep, attempts, lambda: provider.submit(req, ref), before_retry=already_there)

    async def _with_retries(
        self,
        dep: Deployment,
        attempts: list[dict[str, Any]],
        call: Callable[[], Awaitable[T]],
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """``before_retry``: run after a retryable failure; what it returns (not None) is the answer."""
        for attempt in range(self.retries + 1):
            started = time.monotonic()
            try:
                try:
                    async with asyncio.timeout(dep.timeout):  # a whole-call deadline, whatever the transport
                        out = await call()
                except TimeoutError as exc:
                    raise UpstreamError(
                        ErrorCode.upstream_timeout, f"{dep.provider}: no answer within {dep.timeout:g}s"
                    ) from exc
                took = self._measure(dep, "call", started, None)
                attempts.append({"deployment": dep.id, "ok": True, "ms": int(took * 1000)})
                return out
            except UpstreamError as exc:
                self._measure(dep, "call", started, exc.code.value)
                attempts.append({"deployment": dep.id, "error": exc.code.value, "status": exc.status})
                if not exc.retryable or attempt == self.retries:
                    raise
                await asyncio.sleep(self._delay(attempt, exc))
                found = await before_retry() if before_retry is not None else None
                if found is not None:
                    attempts.append({"deployment": dep.id, "ok": True, "found": True})
                    return found
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, exc: UpstreamError) -> float:
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_backoff)
        return min(self.backoff * (2.0**attempt) * (0.5 + random.random()), self.max_backoff)

    async def _poll_until_done(
        self, provider: Provider, dep: Deployment, handle: dict[str, Any], on_progress: OnProgress, on_submit: OnSubmit
    ) -> ProviderResult:
        """Poll a submitted job to its end; transient poll errors retry the poll, never the submit."""
        clock = PollClock(dep, self.poll_interval)
        deadline = time.monotonic() + self.max_poll_seconds
        failures = 0
        while True:
            try:
                status = await self._poll_once(provider, dep, handle)
                failures = 0
            except UpstreamError as exc:
                if not exc.retryable or failures >= 5:
                    raise
                failures += 1
                await asyncio.sleep(self._delay(failures - 1, exc))
                continue
            if status.handle is not None and status.handle != handle:
                handle = status.handle
                await on_submit(dep, handle)
            if status.done:
                if status.result is None:
                    raise UpstreamError(ErrorCode.upstream_error, f"{provider.name}: job finished without images")
                return status.result
            await on_progress(status)
            if time.monotonic() > deadline:
                raise UpstreamError(ErrorCode.upstream_timeout, f"{provider.name}: job did not finish in time")
            await asyncio.sleep(clock.next())

    async def _poll_once(self, provider: Provider, dep: Deployment, handle: dict[str, Any]) -> PollResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(dep.timeout):
                result = await provider.poll(handle)
        except TimeoutError as exc:
            self._measure(dep, "poll", started, ErrorCode.upstream_timeout.value)
            raise UpstreamError(ErrorCode.upstream_timeout, f"{provider.name}: poll timed out") from exc
        except UpstreamError as exc:
            self._measure(dep, "poll", started, exc.code.value)
            raise
        self._measure(dep, "poll", started, None)
        return result

    def _measure(self, dep: Deployment, op: str, started: float, error: str | None) -> float:
        """Record one upstream call (``op``: ``call`` or ``poll``); its seconds."""
        took = time.monotonic() - started
        self.metrics.upstream_call(dep.provider, dep.id, op, took, error)
        self.tracing.upstream(dep.provider, dep.id, op, took, error)
        return took


class PollClock:
    """The waits between polls of one job.

    Long jobs are polled less and less often (x1.5 per poll, up to 8x the base, with jitter), so
    thousands of jobs in flight cost a steady trickle of polls, not a flood. A fixed interval
    (the sandbox's) stays fixed.
    """

    def __init__(self, dep: Deployment, fixed: float | None) -> None:
        self.fixed = fixed
        self.interval = dep.poll_interval
        self.ceiling = float(dep.options.get("max_poll_interval", dep.poll_interval * 8))

    def next(self) -> float:
        if self.fixed is not None:
            return self.fixed
        wait = self.interval * (0.9 + random.random() * 0.2)
        self.interval = min(self.interval * 1.5, self.ceiling)
        return wait
