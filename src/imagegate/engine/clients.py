"""HTTP clients for upstream calls: one pooled client for real hosts, or a provider's fake in the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from imagegate.catalog import Deployment


class Fakes(Protocol):
    """Where the sandbox finds a provider's fake (see :class:`imagegate.testing.sandbox.Sandbox`)."""

    def has_fake(self, provider: str) -> bool: ...

    def client(self, provider: str) -> httpx.AsyncClient: ...


class BoundedClient(httpx.AsyncClient):
    """An httpx client that lets at most ``max_in_flight`` requests into its pool at once.

    httpcore's pool scans every queued request and every connection on each assignment, so
    thousands of concurrent polls would cost quadratic time; waiting here is O(1) per request.
    """

    def __init__(self, *args: Any, max_in_flight: int = 128, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = asyncio.Semaphore(max_in_flight)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self._gate:
            return await super().send(request, **kwargs)


class UpstreamClients:
    def __init__(self, fakes: Fakes | None = None) -> None:
        self.fakes = fakes  # serving --sandbox: providers with a fake talk to it, in process
        self._shared = BoundedClient(
            limits=httpx.Limits(max_connections=160, max_keepalive_connections=96),
            timeout=httpx.Timeout(120.0, connect=10.0),
            trust_env=False,
            max_in_flight=128,
        )
        self._fakes: dict[str, httpx.AsyncClient] = {}

    def client_for(self, deployment: Deployment) -> httpx.AsyncClient:
        if self.fakes is None or not self.fakes.has_fake(deployment.provider):
            return self._shared
        if deployment.provider not in self._fakes:
            self._fakes[deployment.provider] = self.fakes.client(deployment.provider)
        return self._fakes[deployment.provider]

    async def aclose(self) -> None:
        await self._shared.aclose()
        for c in self._fakes.values():
            await c.aclose()
