"""Prometheus metrics of one process, in a registry of its own.

One :class:`Metrics` is built in the composition root and handed by constructor to the parts that
record (the task store, the router, the output writer, the webhook sender, the access middleware), so
nothing here is a module-level global and two gateways in one process (the in-process tests) count
apart. It sits at the bottom of the layers: any layer may record, none need import the API to do so.

Recording is on the request path, so each metric keeps its labelled children in a plain dict keyed
by the label values: after the first request on a route, a count is one dict lookup and one
``inc`` (prometheus_client's own ``labels()`` takes a lock and rebuilds the key every call).
Label values are bounded: route templates (never raw paths), model and deployment ids from the
catalog, error codes from ``ErrorCode``, a few fixed states and outcomes.

Each process exposes its own counters (``GET /metrics``; a worker on ``--metrics-port``); in a
cluster, scrape every process and sum. The live-task gauge is read from the database by API
processes, so each reports the same cluster-wide value (aggregate it with ``max``, not ``sum``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds: upstream calls run from a fraction of a second (polls) to minutes (video-class models)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
#: seconds: the gateway's own answers, sync generations included
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CIRCUIT_STATES = ("closed", "half_open", "open")
LIVE_STATES = ("queued", "running", "awaiting_upload")

M = TypeVar("M", Counter, Gauge, Histogram)


class Children(Generic[M]):
    """A metric's labelled children, made once per label set and then found by a dict lookup."""

    __slots__ = ("metric", "_made")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self._made: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._made.get(labels)
        if child is None:
            child = self._made[labels] = self.metric.labels(*labels)
        return child


class _Circuits(Collector):
    """The circuit of every deployment this process has called, read when scraped (nothing per call)."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "imagegate_circuit_state",
            "A deployment's circuit breaker: 1 for its current state (closed, half_open, open), 0 for the others",
            labels=["deployment", "state"],
        )
        for deployment, current in self.source():
            for state in CIRCUIT_STATES:
                family.add_metric([deployment, state], 1.0 if state == current else 0.0)
        yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Children(
            Counter("imagegate_http_requests", "Requests answered, by route template and status",
                    ["method", "route", "status"], registry=r)
        )  # fmt: skip
        self.request_seconds = Children(
            Histogram("imagegate_http_request_seconds", "Time to answer a request, by route template",
                      ["route"], buckets=REQUEST_BUCKETS, registry=r)
        )  # fmt: skip
        self.tasks_finished = Children(
            Counter("imagegate_tasks_finished", "Tasks that reached a terminal state, by model and state",
                    ["model", "state"], registry=r)
        )  # fmt: skip
        self.credits_spent = Children(
            Counter("imagegate_credits_spent_usd", "Credits charged for delivered images (USD), by model",
                    ["model"], registry=r)
        )  # fmt: skip
        self.live_tasks = Children(
            Gauge("imagegate_tasks_live", "Tasks queued, running or awaiting uploads (cluster-wide, read at scrape)",
                  ["state"], registry=r)
        )  # fmt: skip
        self.upstream_seconds = Children(
            Histogram("imagegate_upstream_call_seconds", "Upstream calls (op: call = generate or submit; poll)",
                      ["provider", "deployment", "op"], buckets=UPSTREAM_BUCKETS, registry=r)
        )  # fmt: skip
        self.upstream_errors = Children(
            Counter("imagegate_upstream_errors", "Upstream calls that failed, by error code",
                    ["provider", "deployment", "code"], registry=r)
        )  # fmt: skip
        self.webhook_deliveries = Children(
            Counter("imagegate_webhook_deliveries", "Webhook attempts by outcome (delivered, retry, failed, stopped)",
                    ["outcome"], registry=r)
        )  # fmt: skip
        self.stored_bytes = Children(
            Counter("imagegate_stored_bytes", "Bytes written to storage (kind: input, output, upload, thumbnail)",
                    ["kind"], registry=r)
        )  # fmt: skip

    # -- recording -------------------------------------------------------------------------
    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests(method, route, str(status)).inc()
        self.request_seconds(route).observe(seconds)

    def task_finished(self, model: str, state: str, cost_micros: int = 0) -> None:
        self.tasks_finished(model, state).inc()
        if cost_micros > 0:
            self.credits_spent(model).inc(cost_micros / 1_000_000)

    def upstream_call(self, provider: str, deployment: str, op: str, seconds: float, error: str | None) -> None:
        self.upstream_seconds(provider, deployment, op).observe(seconds)
        if error is not None:
            self.upstream_errors(provider, deployment, error).inc()

    def stored(self, kind: str, size: int) -> None:
        self.stored_bytes(kind).inc(size)

    def webhook(self, outcome: str) -> None:
        self.webhook_deliveries(outcome).inc()

    # -- read at scrape time ---------------------------------------------------------------
    def watch_circuits(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Report circuits from ``source`` (deployment id, state) pairs at every scrape."""
        self.registry.register(_Circuits(source))

    def set_live(self, counts: Mapping[str, int]) -> None:
        for state in LIVE_STATES:
            self.live_tasks(state).set(counts.get(state, 0))

    def exposition(self) -> bytes:
        """The text exposition format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def serve_http(self, host: str, port: int) -> Callable[[], None]:
        """Expose these metrics on their own port, from a thread (a worker process serves no other HTTP);
        returns what stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            thread.join(5)

        return stop
