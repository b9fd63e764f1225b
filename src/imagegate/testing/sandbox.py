"""Sandbox wiring: every deployment's HTTP client talks to its provider's fake, in process.

The adapter is unchanged: it builds the same URLs and bodies as against the real host; the
client's transport hands each request to the fake's ASGI app instead of the network.
"""

from __future__ import annotations

import httpx

from imagegate.testing.fakes.common import FakeState, create_fake


class Sandbox:
    """One fake app (and its state) per provider, created on first use."""

    def __init__(self, delay_ms: int | None = None) -> None:
        self.delay_ms = delay_ms
        self.apps: dict[str, tuple[object, FakeState]] = {}

    def fake(self, provider: str) -> tuple[object, FakeState]:
        if provider not in self.apps:
            state = FakeState()
            if self.delay_ms is not None:
                state.delay_ms = self.delay_ms
            self.apps[provider] = create_fake(provider, state)
        return self.apps[provider]

    def state(self, provider: str) -> FakeState:
        return self.fake(provider)[1]

    def client(self, provider: str, **kw: object) -> httpx.AsyncClient:
        app, _ = self.fake(provider)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), **kw)  # type: ignore[arg-type]
