"""A provider fake in its own process, for tests that kill and restart the gateway around it.

    python -m tests.fake_server PROVIDER PORT

Serves the provider's fake (``imagegate.testing.fakes.common.FAKES``) with uvicorn, plus control routes:

- ``GET /_ctl/stats``   -> ``{"calls": {...}, "waiting": n, "gate": "open"|"closed"}``
- ``POST /_ctl/config`` ``{"polls_to_finish"?, "delay_ms"?, "gate"?: "open"|"closed"}``

While the gate is closed, POSTs to the fake (submissions) are held before the fake sees them,
so they are not counted; a held request whose client hangs up (a gateway killed with
SIGKILL) is dropped uncounted. That makes "each submission reaches the upstream once"
checkable without racing the kill against a request in flight.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from starlette.types import Message, Receive, Scope, Send

from imagegate.testing.fakes.common import create_fake


class Controlled:
    def __init__(self, provider: str) -> None:
        self.app, self.state = create_fake(provider)
        self.opened = asyncio.Event()
        self.opened.set()
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].startswith("/_ctl/"):
            return await self.control(scope, receive, send)
        if scope["method"] == "POST" and not self.opened.is_set():
            body = await self._body(receive)
            if body is None or not await self._hold(receive):
                return None  # the client went away while held: the fake never saw it
            receive = _replay(body, receive)
        return await self.app(scope, receive, send)

    async def _body(self, receive: Receive) -> bytes | None:
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                return b"".join(chunks)

    async def _hold(self, receive: Receive) -> bool:
        self.waiting += 1
        try:
            gone = asyncio.ensure_future(receive())
            opened = asyncio.ensure_future(self.opened.wait())
            done, _ = await asyncio.wait({gone, opened}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                opened.cancel()
                return False
            gone.cancel()
            return True
        finally:
            self.waiting -= 1

    async def control(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/_ctl/config" and scope["method"] == "POST":
            cfg = json.loads(await self._body(receive) or b"{}")
            for name in ("polls_to_finish", "delay_ms"):
                if name in cfg:
                    setattr(self.state, name, int(cfg[name]))
            if cfg.get("gate") == "open":
                self.opened.set()
            elif cfg.get("gate") == "closed":
                self.opened.clear()
        out = {
            "calls": dict(self.state.calls),
            "waiting": self.waiting,
            "jobs": len(self.state.jobs),
            "gate": "open" if self.opened.is_set() else "closed",
        }
        raw = json.dumps(out).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": raw})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def main() -> None:
    provider, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(Controlled(provider), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
