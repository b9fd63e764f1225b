"""Sandbox wiring: every deployment's HTTP client talks to its provider's fake, in process.

The adapter is unchanged: it builds the same URLs and bodies as against the real host; the
client's transport hands each request to the fake's ASGI app instead of the network.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from imagegate.testing.fakes.common import FAKES, FakeState, create_fake


class Sandbox:
    """One fake app (and its state) per provider, created on first use."""

    def __init__(self, delay_ms: int | None = None) -> None:
        self.delay_ms = delay_ms
        self.apps: dict[str, tuple[FastAPI, FakeState]] = {}

    def has_fake(self, provider: str) -> bool:
        """Whether calls to ``provider`` go to a fake; those without one (``builtin``) run as they are."""
        return provider in FAKES

    def fake(self, provider: str) -> tuple[FastAPI, FakeState]:
        if provider not in self.apps:
            state = FakeState()
            if self.delay_ms is not None:
                state.delay_ms = self.delay_ms
            self.apps[provider] = create_fake(provider, state)
        return self.apps[provider]

    def state(self, provider: str) -> FakeState:
        return self.fake(provider)[1]

    def client(self, provider: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.fake(provider)[0]))
