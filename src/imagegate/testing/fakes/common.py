"""What every provider fake shares: settings, sandbox triggers, an expiring blob store, counters.

A fake is a module in this package exposing ``PROVIDER = "<adapter name>"`` and
``create_app(state: FakeState) -> ASGI app``. It imitates its provider's paths, auth,
bodies, async state machine and error envelopes, and draws real images with
:mod:`imagegate.media.synth`. Prompts may carry triggers:

- ``[sandbox:moderated]``  -> the provider's moderation outcome
- ``[sandbox:error]``      -> the provider's 5xx/internal failure
- ``[sandbox:rate-limit]`` -> the provider's 429 (with Retry-After where it sends one)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib
import os
import pkgutil
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import Response

from imagegate.media import synth

SANDBOX_KEY = "sandbox-key"
TRIGGERS = ("moderated", "error", "rate-limit")


def trigger(prompt: str | None) -> str | None:
    """The sandbox trigger named in a prompt, if any."""
    text = prompt or ""
    for t in TRIGGERS:
        if f"[sandbox:{t}]" in text:
            return t
    return None


@dataclass
class Blob:
    data: bytes
    mime: str
    expires_at: float


@dataclass
class FakeState:
    """Mutable state of one fake instance; tests read the counters and tweak the knobs."""

    api_key: str = SANDBOX_KEY
    delay_ms: int = field(default_factory=lambda: int(os.environ.get("IMAGEGATE_SANDBOX_DELAY_MS", "20")))
    #: how many polls a job needs before it finishes (async state machines advance per poll)
    polls_to_finish: int = 2
    url_ttl: float = 600.0
    public_base: str = "http://fake.invalid"  # set by the app to the host it is served at
    calls: Counter = field(default_factory=Counter)  # "submit", "poll", ... -> count
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    #: scripted failures for fault-injection tests: each entry is popped per request
    script: list[Callable[[Request], Response | None]] = field(default_factory=list)
    sandbox_header: bool = True

    async def work(self, images: int = 1) -> None:
        """Simulate processing time per image."""
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms * max(1, images) / 1000.0)

    def new_id(self, prefix: str = "") -> str:
        return prefix + secrets.token_hex(12)

    def store(self, data: bytes, mime: str, ttl: float | None = None) -> str:
        """Keep bytes behind a signed, expiring path (like the providers' CDN links)."""
        blob_id = secrets.token_hex(10)
        exp = time.time() + (ttl if ttl is not None else self.url_ttl)
        self.blobs[blob_id] = Blob(data, mime, exp)
        sig = hmac.new(self.secret, f"{blob_id}.{int(exp)}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"/_blobs/{blob_id}?expires={int(exp)}&sig={sig}"

    def fetch(self, blob_id: str, expires: str, sig: str) -> Response:
        blob = self.blobs.get(blob_id)
        want = hmac.new(self.secret, f"{blob_id}.{expires}".encode(), hashlib.sha256).hexdigest()[:32]
        if blob is None or not hmac.compare_digest(want, sig):
            return Response("<Error><Code>AccessDenied</Code></Error>", 403, media_type="application/xml")
        if time.time() > float(expires):
            return Response("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                            403, media_type="application/xml")
        return Response(blob.data, 200, media_type=blob.mime)

    def image(self, prompt: str, width: int, height: int, fmt: str = "png", *, seed: int | None = None,
              index: int = 0) -> bytes:
        return synth.render_bytes(prompt, width, height, fmt, seed=seed, index=index)

    def scripted(self, request: Request) -> Response | None:
        """Pop the next scripted response for fault injection, if any."""
        while self.script:
            fn = self.script.pop(0)
            resp = fn(request)
            if resp is not None:
                return resp
        return None


def mount_blobs(app: Any, state: FakeState) -> None:
    """Add the blob route and the sandbox header middleware to a Starlette/FastAPI app."""

    async def blob(request: Request) -> Response:
        q = request.query_params
        return state.fetch(request.path_params["blob_id"], q.get("expires", "0"), q.get("sig", ""))

    app.add_route("/_blobs/{blob_id}", blob, methods=["GET"])

    @app.middleware("http")
    async def _sandbox_header(request: Request, call_next):  # type: ignore[no-untyped-def]
        state.public_base = f"{request.url.scheme}://{request.url.netloc}"
        resp = await call_next(request)
        if state.sandbox_header:
            resp.headers["x-imagegate-sandbox"] = "1"
        return resp


def fake_modules() -> dict[str, Any]:
    """provider name -> fake module, discovered from this package."""
    import imagegate.testing.fakes as pkg

    out: dict[str, Any] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name in ("common", "__main__"):
            continue
        m = importlib.import_module(f"imagegate.testing.fakes.{mod.name}")
        name = getattr(m, "PROVIDER", None)
        if name:
            out[name] = m
    return out


def create_fake(provider: str, state: FakeState | None = None) -> tuple[Any, FakeState]:
    mods = fake_modules()
    if provider not in mods:
        raise KeyError(f"no fake for provider {provider!r}; have {sorted(mods)}")
    state = state or FakeState()
    return mods[provider].create_app(state), state
