"""The contract between the engine and one upstream provider.

An adapter only translates: :class:`ImageRequest` -> the provider's wire format, and the
provider's answer -> :class:`ProviderResult` (image bytes or URLs we download ourselves).
Adapters register themselves with :func:`register`; the engine never branches per provider.

Two kinds:
- ``sync``: :meth:`Provider.generate` returns the images.
- ``poll``: :meth:`Provider.submit` returns a JSON-safe *handle* (upstream ids, poll URLs) that
  the runner stores on the task before it calls :meth:`Provider.poll`, so a restarted process
  resumes polling instead of submitting (and paying) again.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx

from imagegate.catalog import Deployment
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, GeneratedImage, ImageRequest, ProviderResult, UpstreamError


@dataclass(slots=True)
class PollResult:
    """One look at a submitted upstream job."""

    done: bool
    result: ProviderResult | None = None
    progress: int | None = None  # 0-100 when the provider reports it
    queue_position: int | None = None
    handle: dict[str, Any] | None = None  # an updated handle to store, if the adapter changed it


class Provider:
    """Base class for adapters. Subclasses set ``name`` and ``kind`` and override the hooks."""

    name: ClassVar[str]
    kind: ClassVar[Literal["sync", "poll"]] = "sync"
    default_base_url: ClassVar[str | None] = None
    #: credential names the adapter reads from ``deployment.credentials``
    credential_names: ClassVar[tuple[str, ...]] = ("api_key",)
    #: whether the provider can cancel a submitted job
    can_cancel: ClassVar[bool] = False

    def __init__(self, deployment: Deployment, spec: ModelSpec, http: httpx.AsyncClient) -> None:
        self.deployment = deployment
        self.spec = spec  # the catalog model this deployment serves: its capabilities are the adapter's rules
        self.http = http

    @property
    def base_url(self) -> str:
        url = self.deployment.base_url or self.default_base_url
        if not url:
            raise UpstreamError(ErrorCode.upstream_error, f"deployment {self.deployment.id} has no base_url")
        return url.rstrip("/")

    def credential(self, name: str = "api_key") -> str:
        return self.deployment.credentials.get(name, "")

    # -- hooks ---------------------------------------------------------------------------
    async def generate(self, req: ImageRequest) -> ProviderResult:
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def submit(self, req: ImageRequest) -> dict[str, Any]:
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def poll(self, handle: dict[str, Any]) -> PollResult:
        raise NotImplementedError(f"{self.name} is a {self.kind} provider")

    async def cancel(self, handle: dict[str, Any]) -> None:
        return None

    # -- helpers shared by adapters --------------------------------------------------------
    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """Send one request, turning transport failures into :class:`UpstreamError`."""
        kw.setdefault("timeout", self.deployment.timeout)
        try:
            return await self.http.request(method, url, **kw)
        except httpx.TimeoutException as exc:
            raise UpstreamError(ErrorCode.upstream_timeout, f"{self.name}: upstream timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.upstream_unavailable, f"{self.name}: cannot reach upstream ({type(exc).__name__})"
            ) from exc

    async def download(self, url: str, headers: dict[str, str] | None = None) -> GeneratedImage:
        """Fetch a result URL now: upstream URLs expire, so we keep the bytes ourselves."""
        resp = await self.request("GET", url, headers=headers or {})
        if resp.status_code != 200:
            raise UpstreamError(
                ErrorCode.upstream_error, f"{self.name}: result download failed with HTTP {resp.status_code}"
            )
        return GeneratedImage(data=resp.content, mime=resp.headers.get("content-type"))

    async def download_all(self, images: list[GeneratedImage]) -> list[GeneratedImage]:
        async def one(img: GeneratedImage) -> GeneratedImage:
            if img.data is not None or not img.url:
                return img
            got = await self.download(img.url)
            got.revised_prompt = img.revised_prompt
            return got

        return list(await asyncio.gather(*(one(i) for i in images)))


def http_error(provider: str, status: int, message: str, *, retry_after: str | float | None = None,
               moderated: bool = False, param: str | None = None) -> UpstreamError:
    """Map an upstream HTTP status onto our error classes (adapters refine with body codes)."""
    ra: float | None
    try:
        ra = float(retry_after) if retry_after is not None else None
    except (TypeError, ValueError):
        ra = None
    if moderated:
        code = ErrorCode.content_policy_violation
    elif status in (401, 403):
        code = ErrorCode.upstream_auth
    elif status == 402:
        code = ErrorCode.upstream_quota
    elif status == 429:
        code = ErrorCode.upstream_rate_limited
    elif status in (408, 504):
        code = ErrorCode.upstream_timeout
    elif status == 503:
        code = ErrorCode.upstream_unavailable
    elif status >= 500:
        code = ErrorCode.upstream_error
    elif status in (400, 404, 413, 422):
        code = ErrorCode.upstream_bad_request
    else:
        code = ErrorCode.upstream_error
    return UpstreamError(code, f"{provider}: {message}", status=status, retry_after=ra, param=param)


_REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make an adapter known by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def provider_class(name: str) -> type[Provider]:
    load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {sorted(_REGISTRY)}") from None


def registered() -> dict[str, type[Provider]]:
    load_all()
    return dict(_REGISTRY)


_loaded = False


def load_all() -> None:
    """Import every module in this package once, so each adapter registers itself."""
    global _loaded
    if _loaded:
        return
    import imagegate.providers as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("base",):
            importlib.import_module(f"imagegate.providers.{mod.name}")
    _loaded = True
