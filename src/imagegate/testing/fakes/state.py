"""What one fake instance remembers, and the knobs a test turns on it.

Every fake shares this state shape so that a test, the sandbox and the out-of-process fake server
(``tests/fake_server.py``) can read counters and script failures without knowing which provider
sits behind. Prompts may carry sandbox triggers, so a client of ``--sandbox`` can provoke each
provider's own failure without a test harness:

- ``[sandbox:moderated]``  -> the provider's moderation outcome
- ``[sandbox:error]``      -> the provider's 5xx/internal failure
- ``[sandbox:rate-limit]`` -> the provider's 429 (with Retry-After where it sends one)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from imagegate.media import synth

RECEIVED_KEPT = 1000

SANDBOX_KEY = "sandbox-key"
TRIGGERS = ("moderated", "error", "rate-limit")

#: the address the request being handled came to (set by the fake's app for that request only): clients
#: of one sandbox server may name it differently, and each must get links it can follow
REQUEST_BASE: ContextVar[str | None] = ContextVar("imagegate_fake_request_base", default=None)
#: one scripted fault: a reply for this request, or None to let the next entry (or the fake) answer
Scripted = Callable[[Request], Response | None]
#: a fake's record of one job or of the last body it saw; tests index it like the JSON it mirrors
Job = dict[str, Any]


def trigger(prompt: str | None) -> str | None:
    """The sandbox trigger named in a prompt, if any."""
    text = prompt or ""
    for t in TRIGGERS:
        if f"[sandbox:{t}]" in text:
            return t
    return None


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it, so a test can assert on the wire without scripting a reply.

    ``json`` is the parsed body (None when it is not JSON); ``form`` the text fields of a multipart
    or urlencoded body; ``files`` how many files each multipart field carried. Entries also read
    like mappings (``entry["json"]``), as tests that compare them with JSON bodies expect.
    """

    method: str
    path: str
    json: Any
    form: dict[str, str]
    files: dict[str, int]

    def __getitem__(self, name: str) -> object:
        if name not in ("method", "path", "json", "form", "files"):
            raise KeyError(name)
        return getattr(self, name)


@dataclass
class Blob:
    data: bytes
    mime: str
    expires_at: float


def _delay_ms() -> int:
    return int(os.environ.get("IMAGEGATE_SANDBOX_DELAY_MS", "20"))


@dataclass
class FakeState:
    """Mutable state of one fake instance; tests read the counters and tweak the knobs."""

    api_key: str = SANDBOX_KEY
    delay_ms: int = field(default_factory=_delay_ms)
    #: how many polls a job needs before it finishes (async state machines advance per poll)
    polls_to_finish: int = 2
    url_ttl: float = 600.0
    public_base: str = "http://fake.invalid"  # the host (and mount path) the last request came to
    #: on a real socket (``imagegate sandbox-server``) the fake is reachable only at its own address, so
    #: URLs that would name another of the provider's hosts (a CDN, a regional poller) name that instead
    single_host: bool = False
    calls: Counter[str] = field(default_factory=Counter)  # "submit", "poll", ... -> count
    jobs: dict[str, Job] = field(default_factory=dict)
    #: job id -> polls it has seen (the poll state machine's clock)
    polled: Counter[str] = field(default_factory=Counter)
    blobs: dict[str, Blob] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    #: scripted failures for fault-injection tests: each entry is popped per request
    script: list[Scripted] = field(default_factory=list)
    #: the requests the fake handled, in order (the last RECEIVED_KEPT: a sandbox serves for days)
    received: deque[Received] = field(default_factory=lambda: deque(maxlen=RECEIVED_KEPT))
    sandbox_header: bool = True

    async def work(self, images: int = 1) -> None:
        """Simulate processing time per image."""
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms * max(1, images) / 1000.0)

    def new_id(self, prefix: str = "") -> str:
        return prefix + secrets.token_hex(12)

    def submitted(self, images: int = 0) -> None:
        """Count one accepted submission: the number the submit-exactly-once tests compare."""
        self.calls["submit"] += 1
        if images:
            self.calls["images"] += images

    def advance(self, job_id: str, *stages: str) -> str | None:
        """Count one poll of a running job: None when this poll finishes it, else the stage it is now in.

        ``stages`` are the provider's words for a running job by poll (the first poll sees the
        first, later polls the last), so every fake's state machine runs on the same clock,
        ``polls_to_finish``.
        """
        self.polled[job_id] += 1
        polls = self.polled[job_id]
        if polls >= self.polls_to_finish:
            return None
        return stages[min(polls, len(stages)) - 1]

    def scripted(self, request: Request) -> Response | None:
        """Pop the next scripted response for fault injection, if any."""
        while self.script:
            resp = self.script.pop(0)(request)
            if resp is not None:
                return resp
        return None

    def image(
        self, prompt: str, width: int, height: int, fmt: str = "png", *, seed: int | None = None, index: int = 0
    ) -> bytes:
        return synth.render_bytes(prompt, width, height, fmt, seed=seed, index=index)

    def store(self, data: bytes, mime: str, ttl: float | None = None) -> str:
        """Keep bytes behind a signed, expiring path (like the providers' CDN links)."""
        blob_id = secrets.token_hex(10)
        exp = time.time() + (ttl if ttl is not None else self.url_ttl)
        self.blobs[blob_id] = Blob(data, mime, exp)
        return f"/_blobs/{blob_id}?expires={int(exp)}&sig={self._sign(blob_id, str(int(exp)))}"

    def origin(self, host: str | None = None) -> str:
        """Where an absolute URL should point: the provider's other ``host`` in process, else this fake.

        In process every host reaches the fake (the transport ignores it), so the fakes name the
        provider's real CDN and polling hosts and adapters are tested against them; over a socket
        only the address the request came to answers (the last one seen, outside a request).
        """
        if host and not self.single_host:
            return host
        return REQUEST_BASE.get() or self.public_base

    def link(self, data: bytes, mime: str, ttl: float | None = None, *, host: str | None = None) -> str:
        """An absolute result URL: on the host the fake is served at, or a provider CDN's ``host``."""
        return self.origin(host) + self.store(data, mime, ttl)

    def fetch(self, blob_id: str, expires: str, sig: str) -> Response:
        """Serve a stored blob the way S3-style CDNs refuse a bad or stale signature: 403 XML."""
        blob = self.blobs.get(blob_id)
        if blob is None or not hmac.compare_digest(self._sign(blob_id, expires), sig):
            return Response("<Error><Code>AccessDenied</Code></Error>", 403, media_type="application/xml")
        if time.time() > float(expires):
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                403,
                media_type="application/xml",
            )
        return Response(blob.data, 200, media_type=blob.mime)

    def _sign(self, blob_id: str, expires: str) -> str:
        return hmac.new(self.secret, f"{blob_id}.{expires}".encode(), hashlib.sha256).hexdigest()[:32]
