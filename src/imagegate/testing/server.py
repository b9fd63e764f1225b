"""The standalone sandbox upstream: every provider fake in one process, on a real socket.

Why it exists: the in-process sandbox (``--sandbox``) lives inside one gateway, but a cluster's
API servers and workers are separate processes, each with its own data dir or none, and they must
all reach the same upstream, over the network, as they would a provider. Run it with
``python -m imagegate.testing.server --host H --port P [--delay-ms N]`` (or ``imagegate
sandbox-server``) and point gateways at it with ``IMAGEGATE_SANDBOX_URL=http://H:P``.

Routes:

- ``/{provider}/...``: that provider's fake, as if ``http://H:P/{provider}`` were its host
  (``/openai/v1/images/generations``, ``/dashscope/api/v1/tasks/{id}``, ``/hunyuan/``). A prefix
  per provider keeps paths that several providers share (OpenAI and OpenAI-compatible services
  both use ``/v1/images/generations``) apart. Each fake learns its mount from the request, so the
  absolute URLs it hands out (polling URLs, result links, signed blobs) carry the prefix, and a
  fake that would name another of its provider's hosts (BFL's regional poller, Replicate's CDN)
  names its own instead (:attr:`FakeState.single_host`): only this socket answers.
  Signatures over the path (Tencent TC3) cover the path below the prefix, the path on the host
  the fake stands in for.
- ``GET /_sandbox/stats`` -> ``{"submits": {provider: n}, "calls": {provider: {counter: n}}}``,
  every provider listed, zeros included: what "each task reached the upstream once" tests read.
- ``POST /_sandbox/reset``: counters and request records back to zero (jobs and links already
  handed out keep working); answers the stats.
- ``GET /_sandbox/config``, ``POST /_sandbox/config`` ``{"delay_ms"?, "polls_to_finish"?,
  "provider"?}``: the fakes' knobs, for every provider or one.

All state is in memory: nothing here touches a disk. ``IMAGEGATE_SANDBOX_DELAY_MS`` sets each
fake's simulated work per image (as in process); ``delay_ms`` overrides it. The prompt triggers
(``[sandbox:moderated]``, ``[sandbox:error]``, ``[sandbox:rate-limit]``) work as in process.

The ``x-imagegate-sandbox: 1`` rule: a fake's image is never a real one, however it travelled.
Every answer of this server carries the header (the fakes stamp theirs), and a gateway pointed at
it with ``IMAGEGATE_SANDBOX_URL`` marks every answer of its own, exactly as ``--sandbox`` does:
it is still not talking to a real provider. The header says how the gateway is configured, not
which deployment served a given request (the built-in model runs locally either way).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from imagegate.testing.fakes.common import FAKES, FakeState
from imagegate.testing.sandbox import Sandbox

KNOBS = ("delay_ms", "polls_to_finish")
HEADERS = {"x-imagegate-sandbox": "1"}


class SandboxServer:
    """Every fake's app and state, created once, and the control routes that read and reset them."""

    def __init__(self, delay_ms: int | None = None) -> None:
        sandbox = Sandbox(delay_ms=delay_ms)
        self.states: dict[str, FakeState] = {}
        mounts: list[BaseRoute] = []
        for provider in sorted(FAKES):
            app, state = sandbox.fake(provider)
            state.single_host = True
            self.states[provider] = state
            mounts.append(Mount(f"/{provider}", app=app))
        control: list[BaseRoute] = [
            Route("/_sandbox/stats", self.stats, methods=["GET"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
            Route("/_sandbox/config", self.config, methods=["GET", "POST"]),
        ]
        unknown = Route("/{path:path}", self.unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        self.app = Starlette(routes=[*control, *mounts, unknown])

    def snapshot(self) -> dict[str, Any]:
        return {
            "submits": {p: s.calls["submit"] for p, s in self.states.items()},
            "calls": {p: dict(s.calls) for p, s in self.states.items()},
        }

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.snapshot(), headers=HEADERS)

    async def unknown(self, request: Request) -> Response:
        """A path under no fake: say which prefixes exist, rather than a bare 404 an adapter can't explain."""
        detail = f"no fake serves {request.url.path!r}; providers: {sorted(self.states)} (as /{{provider}}/...)"
        return JSONResponse({"error": detail}, 404, headers=HEADERS)

    async def reset(self, request: Request) -> Response:
        for state in self.states.values():
            state.calls.clear()
            state.received.clear()
        return JSONResponse(self.snapshot(), headers=HEADERS)

    async def config(self, request: Request) -> Response:
        if request.method == "POST":
            refused = self._configure(await request.body())
            if refused is not None:
                return JSONResponse({"error": refused}, 400, headers=HEADERS)
        knobs = {k: {p: getattr(s, k) for p, s in self.states.items()} for k in KNOBS}
        return JSONResponse(knobs, headers=HEADERS)

    def _configure(self, raw: bytes) -> str | None:
        """Apply ``{"delay_ms"?, "polls_to_finish"?, "provider"?}``; the reason it is refused, if it is."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return "the body is not JSON"
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        provider = body.get("provider")
        if provider is not None and provider not in self.states:
            return f"no fake for provider {provider!r}; have {sorted(self.states)}"
        values = {k: body[k] for k in KNOBS if k in body}
        for name, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return f"{name!r} must be a whole number >= 0"
        for p, state in self.states.items():
            if provider in (None, p):
                for name, value in values.items():
                    setattr(state, name, value)
        return None


def create_sandbox_app(delay_ms: int | None = None) -> Starlette:
    """The ASGI app of :class:`SandboxServer` (to mount or serve with any ASGI server)."""
    return SandboxServer(delay_ms).app


def run_sandbox_server(
    host: str = "127.0.0.1", port: int = 8900, delay_ms: int | None = None, *, log_level: str = "warning"
) -> None:
    """Serve every fake until interrupted; ``delay_ms`` overrides ``IMAGEGATE_SANDBOX_DELAY_MS``."""
    uvicorn.run(create_sandbox_app(delay_ms), host=host, port=port, log_level=log_level, lifespan="off")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m imagegate.testing.server", description="Serve every provider fake, each under /{provider}."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--delay-ms", type=int, default=None, help="simulated work per image (ms)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    run_sandbox_server(args.host, args.port, args.delay_ms, log_level=args.log_level)


if __name__ == "__main__":
    main()
