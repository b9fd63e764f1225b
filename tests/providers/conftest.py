"""Helpers for provider contract tests: an adapter wired to its fake through the Sandbox."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegate.domain import ImageInput, ImageRequest
from imagegate.media import synth
from imagegate.providers.base import Deployment, PollResult, Provider, provider_class
from imagegate.testing.sandbox import Sandbox


class Wired:
    """One adapter talking to its provider's fake; ``state`` is the fake's counters and knobs."""

    def __init__(self, provider: str, model: str, *, key: str = "sandbox-key", **dep: Any) -> None:
        self.sandbox = Sandbox(delay_ms=0)
        self.state = self.sandbox.state(provider)
        self.client = self.sandbox.client(provider)
        deployment = Deployment(id=f"{provider}-test", provider=provider, model=model,
                                credentials={n: key for n in provider_class(provider).credential_names},
                                **dep)
        self.adapter: Provider = provider_class(provider)(deployment, self.client)

    async def run(self, req: ImageRequest, max_polls: int = 50) -> Any:
        """generate() for sync adapters; submit() + poll() until done for poll adapters."""
        if self.adapter.kind == "sync":
            return await self.adapter.generate(req)
        handle = await self.adapter.submit(req)
        for _ in range(max_polls):
            got: PollResult = await self.adapter.poll(handle)
            if got.handle is not None:
                handle = got.handle
            if got.done:
                return got.result
        raise AssertionError("job never finished")


@pytest.fixture
def wire() -> Callable[..., Wired]:
    return Wired


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


def once(status: int, body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> Callable[[Request], Response]:
    """A scripted one-shot reply for ``state.script``."""

    def reply(_request: Request) -> Response:
        if raw is not None:
            return Response(raw, status, headers=headers)
        return JSONResponse(body, status, headers=headers)

    return reply


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules do not import conftest)."""
    return SimpleNamespace(size_of=size_of, fmt_of=fmt_of, picture=picture, alpha_mask=alpha_mask, once=once,
                           ImageRequest=ImageRequest)
