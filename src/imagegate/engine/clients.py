"""HTTP clients for upstream calls: one pooled client for real hosts, or the sandbox's fakes."""

from __future__ import annotations

import httpx

from imagegate.providers.base import Deployment


class UpstreamClients:
    def __init__(self, sandbox: object | None = None) -> None:
        self.sandbox = sandbox  # imagegate.testing.sandbox.Sandbox when serving --sandbox
        self._shared = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            timeout=httpx.Timeout(120.0, connect=10.0), trust_env=False,
        )
        self._fakes: dict[str, httpx.AsyncClient] = {}

    def client_for(self, deployment: Deployment) -> httpx.AsyncClient:
        if self.sandbox is None:
            return self._shared
        if deployment.provider == "builtin":
            return self._shared
        if deployment.provider not in self._fakes:
            self._fakes[deployment.provider] = self.sandbox.client(deployment.provider)  # type: ignore[attr-defined]
        return self._fakes[deployment.provider]

    async def aclose(self) -> None:
        await self._shared.aclose()
        for c in self._fakes.values():
            await c.aclose()
