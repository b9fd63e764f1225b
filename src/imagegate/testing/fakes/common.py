"""Which fake serves which provider, and the names tests import from one place.

A fake is a module in this package with ``PROVIDER = "<adapter name>"``, a docstring listing what
it assumes about the real provider, plain handler functions over :mod:`.state` and :mod:`.server`,
and ``create_app(state) -> FastAPI``, usually ``fake_app(state, ROUTES, auth=...)``. It is listed
in :data:`FAKES` by hand: a typo or a missing fake then fails at import, not at the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI

from imagegate.testing.fakes import (
    ark,
    bfl,
    dashscope,
    fal,
    google,
    hunyuan,
    kling,
    midjourney,
    openai,
    openai_compat,
    replicate,
    stability,
    tencent_mps,
)
from imagegate.testing.fakes.server import Auth, Endpoint, Handler, fake_app
from imagegate.testing.fakes.state import SANDBOX_KEY, TRIGGERS, FakeState, Received, trigger

__all__ = [
    "FAKES",
    "SANDBOX_KEY",
    "TRIGGERS",
    "Auth",
    "Endpoint",
    "FakeFactory",
    "FakeState",
    "Handler",
    "Received",
    "create_fake",
    "fake_app",
    "fake_modules",
    "trigger",
]

#: builds one fake app over the state it mutates
FakeFactory = Callable[[FakeState], FastAPI]

FAKES: Mapping[str, FakeFactory] = {
    ark.PROVIDER: ark.create_app,
    bfl.PROVIDER: bfl.create_app,
    dashscope.PROVIDER: dashscope.create_app,
    fal.PROVIDER: fal.create_app,
    google.PROVIDER: google.create_app,
    hunyuan.PROVIDER: hunyuan.create_app,
    kling.PROVIDER: kling.create_app,
    midjourney.PROVIDER: midjourney.create_app,
    openai.PROVIDER: openai.create_app,
    openai_compat.PROVIDER: openai_compat.create_app,
    replicate.PROVIDER: replicate.create_app,
    stability.PROVIDER: stability.create_app,
    tencent_mps.PROVIDER: tencent_mps.create_app,
}


def fake_modules() -> Mapping[str, FakeFactory]:
    """provider name -> app factory (the name is older than the mapping: a fake used to be found as a module)."""
    return FAKES


def create_fake(provider: str, state: FakeState | None = None) -> tuple[FastAPI, FakeState]:
    if provider not in FAKES:
        raise KeyError(f"no fake for provider {provider!r}; have {sorted(FAKES)}")
    state = state or FakeState()
    return FAKES[provider](state), state
