"""Helpers for provider contract tests: an adapter wired to its fake through the Sandbox."""

from __future__ import annotations

import io
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.catalog import Deployment, builtin_specs
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ImageInput, ImageRequest
from imagegate.media import synth
from imagegate.providers.base import PollResult, Provider
from imagegate.providers.registry import provider_class
from imagegate.testing.sandbox import Sandbox


class Wired:
    """One adapter talking to its provider's fake; ``state`` is the fake's counters and knobs.

    Every credential the adapter names gets ``key``; ``credentials`` overrides single ones (a wrong secret only).
    Pass ``sandbox`` to share one with the test; otherwise a fresh one is made. The adapter serves the catalog
    model of ``spec_for(provider, model)`` unless ``spec`` names another (a catalog entry a test bends).
    """

    def __init__(
        self,
        provider: str,
        model: str,
        *,
        key: str = "sandbox-key",
        credentials: dict[str, str] | None = None,
        sandbox: Sandbox | None = None,
        spec: ModelSpec | None = None,
        **dep: Any,
    ) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox(delay_ms=0)
        self.state = self.sandbox.state(provider)
        self.client = self.sandbox.client(provider)
        creds = {n: key for n in provider_class(provider).credential_names}
        creds.update(credentials or {})
        deployment = Deployment(id=f"{provider}-test", provider=provider, model=model, credentials=creds, **dep)
        self.adapter: Provider = provider_class(provider)(deployment, spec or spec_for(provider, model), self.client)

    async def run(self, req: ImageRequest, max_polls: int = 50) -> Any:
        """generate() for sync adapters; submit() + poll() until done for poll adapters."""
        if self.adapter.kind == "sync":
            return await self.adapter.generate(req)
        result, _, _ = await trace(self.adapter, req, max_polls)
        return result


def spec_for(provider: str, model: str) -> ModelSpec:
    """The catalog model a deployment of ``provider`` serving upstream ``model`` belongs to.

    An upstream model the catalog does not list gets the first catalog model of that provider.
    """
    specs = builtin_specs()
    for spec in specs:
        if any(d.provider == provider and d.model == model for d in spec.deployments):
            return spec
    return next(s for s in specs if any(d.provider == provider for d in s.deployments))


async def trace(adapter: Provider, req: ImageRequest, max_polls: int = 10) -> tuple[Any, list[PollResult], dict]:
    """submit() then ``follow`` the handle: (result, every PollResult seen, the last handle)."""
    return await follow(adapter, await adapter.submit(req), max_polls)


async def follow(adapter: Provider, handle: dict, max_polls: int = 10) -> tuple[Any, list[PollResult], dict]:
    """poll() until done, storing each updated ``PollResult.handle`` as the runner does.

    Returns (result, every PollResult seen, the last handle); fails the test if ``max_polls`` polls do not finish.
    """
    seen: list[PollResult] = []
    for _ in range(max_polls):
        got = await adapter.poll(handle)
        seen.append(got)
        if got.handle is not None:
            handle = got.handle
        if got.done:
            return got.result, seen, handle
    raise AssertionError("job never finished")


@pytest.fixture
def wire() -> Callable[..., Wired]:
    return Wired


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(delay_ms=0)


@pytest.fixture
def make(request: pytest.FixtureRequest, sandbox: Sandbox) -> Callable[..., Provider]:
    """Adapter factory on the test's ``sandbox``, for the module's ``PROVIDER`` (default model ``MODEL``).

    ``make(model=None, *, key=..., credentials=None, base_url=None, spec=None, **options)``: the keywords
    left over become the deployment's options.
    """
    provider: str = request.module.PROVIDER
    default_model: str = request.module.MODEL

    def make(
        model: str | None = None,
        *,
        key: str = "sandbox-key",
        credentials: dict[str, str] | None = None,
        base_url: str | None = None,
        spec: ModelSpec | None = None,
        **options: Any,
    ) -> Provider:
        return Wired(
            provider,
            model or default_model,
            key=key,
            credentials=credentials,
            sandbox=sandbox,
            spec=spec,
            base_url=base_url,
            options=options,
        ).adapter

    return make


@pytest.fixture
def state(request: pytest.FixtureRequest, sandbox: Sandbox) -> Any:
    """The ``sandbox`` fake's counters and knobs for the module's ``PROVIDER``."""
    return sandbox.state(request.module.PROVIDER)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def fmt_of(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as img:
        return (img.format or "").lower()


def picture(w: int = 512, h: int = 512, fmt: str = "png", url: str | None = None) -> ImageInput:
    data = synth.render_bytes("input picture", w, h, fmt)
    return ImageInput(data=data, mime=f"image/{fmt}", width=w, height=h, source="url" if url else "upload", url=url)


def alpha_mask(w: int = 512, h: int = 512) -> ImageInput:
    """OpenAI convention: opaque everywhere except a transparent square (the area to edit)."""
    m = Image.new("RGBA", (w, h), (0, 0, 0, 255))
    m.paste((0, 0, 0, 0), (w // 4, h // 4, w // 2, h // 2))
    buf = io.BytesIO()
    m.save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png", width=w, height=h)


def once(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Callable[[Request], Response]:
    """A scripted one-shot reply for ``state.script``."""

    def reply(_request: Request) -> Response:
        if raw is not None:
            return Response(raw, status, headers=headers)
        return JSONResponse(body, status, headers=headers)

    return reply


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules do not import conftest)."""
    return SimpleNamespace(
        size_of=size_of,
        fmt_of=fmt_of,
        picture=picture,
        alpha_mask=alpha_mask,
        once=once,
        trace=trace,
        follow=follow,
        ImageRequest=ImageRequest,
        spec_for=spec_for,
    )
