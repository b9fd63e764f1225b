"""The canonical request and result types: dialects parse into an :class:`ImageRequest`,
providers receive one and answer with a :class:`ProviderResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["generate", "edit"]
ResponseFormat = Literal["url", "b64_json", "b64_ephemeral"]
OutputFormat = Literal["png", "jpeg", "webp"]

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(slots=True)
class ImageInput:
    """An input image, already fetched and checked to decode."""

    data: bytes
    mime: str
    width: int
    height: int
    source: str = "inline"  # "upload", "url", "data-uri", "base64", "upload-slot"
    url: str | None = None  # original URL when the client passed one


@dataclass(slots=True)
class ImageRequest:
    """What the client asked for, in imagegate's own terms, validated against the catalog."""

    model: str
    prompt: str = ""
    mode: Mode = "generate"
    n: int = 1
    width: int | None = None  # None: the model's default ("auto")
    height: int | None = None
    resolution: str | None = None  # 1K / 2K / 4K as asked
    aspect_ratio: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    input_fidelity: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    response_format: ResponseFormat = "url"
    output_format: OutputFormat = "png"
    output_compression: int | None = None
    user: str | None = None
    input_region: str | None = None
    partial_images: int | None = None  # streamed previews the client asked for (0-3), where the upstream makes them
    images: list[ImageInput] = field(default_factory=list)
    mask: ImageInput | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # dialect-specific bits worth recording

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary (no image bytes) stored on the task."""
        out = {
            k: getattr(self, k)
            for k in (
                "model",
                "prompt",
                "mode",
                "n",
                "width",
                "height",
                "resolution",
                "aspect_ratio",
                "quality",
                "style",
                "background",
                "moderation",
                "input_fidelity",
                "seed",
                "negative_prompt",
                "response_format",
                "output_format",
                "output_compression",
                "user",
                "input_region",
                "partial_images",
            )
            if getattr(self, k) is not None
        }
        out["images"] = [
            {"source": i.source, "url": i.url, "mime": i.mime, "width": i.width, "height": i.height}
            for i in self.images
        ]
        if self.mask is not None:
            out["mask"] = {"source": self.mask.source, "width": self.mask.width, "height": self.mask.height}
        if self.extra:
            out["extra"] = self.extra
        return out


@dataclass(slots=True)
class GeneratedImage:
    """One image as a provider produced it: bytes, or a URL we must download before it expires."""

    data: bytes | None = None
    url: str | None = None
    mime: str | None = None
    revised_prompt: str | None = None


@dataclass(slots=True)
class ProviderResult:
    images: list[GeneratedImage]
    usage: dict[str, Any] | None = None  # the upstream's own figures, as it reported them (task record only)
    tokens: dict[str, Any] | None = None  # token counts in OpenAI's usage shape, where the upstream gave them
