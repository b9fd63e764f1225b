"""The requests of the OpenAI Images routes, as checked and as documented.

Unknown fields are accepted and ignored. OpenAI's SDKs pass ``extra_body`` through, and the
services this dialect stands in for (OmniRouters, OmniaKey, ImageRouter) each add their own
fields, so a client written for any of them must not be refused for a field another one reads;
the core builds the upstream request from the fields below only, so an ignored field goes
nowhere.

The images (``image`` / ``image[]``, ``mask``, ``images``) are read apart from the other fields
(:func:`imagegate.api.body.read_body` keeps their order and checks that each is a string or a
file), so :class:`ImageParams` checks the rest and the documented bodies add the images.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

ImageString = str  # an http(s) URL, a data URI, raw base64 or upload://<id>


class ResponseFormat(enum.StrEnum):
    """url (a signed link), b64_json, or b64_ephemeral (base64, and nothing stored). Left out: b64_json
    for GPT Image models on /v1/images/* (as OpenAI answers), url for every other model and on
    /v1/openai/images/*."""

    url = "url"
    b64_json = "b64_json"
    b64_ephemeral = "b64_ephemeral"


#: a 16x16 PNG, so that the documented example of an edit runs as it is ("Try it out" in /docs)
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAGUlEQVR42mNkaGhgIAUw"
    "MZAIRjWMahg6GgBBvQEgL5Ky8wAAAABJRU5ErkJggg=="
)
_GENERATION: dict[str, JsonValue] = {"model": "test/test", "prompt": "a lighthouse at dusk", "size": "1024x768", "n": 1}
_IMAGE_TEXT = "input image(s): http(s) URL, data URI, base64 or upload://<id> (see POST /v1/uploads); up to 16"
_FILE_TEXT = "input image file(s) (the field may be named image[]); URL or data URI strings are accepted too"


class ImageParams(BaseModel):
    """An image generation or edit. Types and bounds are checked as written here; whether a value
    suits the chosen model is checked against its catalog entry (GET /v1/models lists each model's
    sizes, tiers, ratios, qualities, formats and limits)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="a model id or alias from GET /v1/models", examples=["test/test"])
    prompt: str | None = Field(None, description="what to make; most models require it", examples=["a lighthouse"])
    n: int | None = Field(None, ge=1, le=10, description="how many images (a model may allow fewer)")
    size: str | None = Field(
        None, description="WIDTHxHEIGHT ('×' and '*' also separate) or auto", examples=["1024x1024", "auto"]
    )
    resolution: str | None = Field(None, description="a size tier: 1K, 2K or 4K, with aspect_ratio")
    aspect_ratio: str | None = Field(None, description="W:H, e.g. 16:9", examples=["16:9"])
    quality: str | None = Field(None, description="auto, low, medium, high, standard or hd, as the model allows")
    style: str | None = Field(None, description="vivid or natural, where the model has styles")
    background: str | None = Field(None, description="auto, transparent or opaque, where the model has them")
    moderation: str | None = Field(None, description="low or auto (GPT Image models)")
    input_fidelity: str | None = Field(
        None, description="low or high: how closely an edit keeps its inputs (GPT Image models that take it)"
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="where the model takes one")
    negative_prompt: str | None = Field(None, description="what to avoid, where the model takes it")
    response_format: ResponseFormat | None = None
    output_format: str | None = Field(
        None, description="png, jpeg (or jpg) or webp; png by default, webp on /v1/openai/images/*"
    )
    output_compression: int | None = Field(None, ge=0, le=100, description="jpeg and webp quality")
    user: str | None = Field(None, description="an end-user id, recorded and passed on")
    input_region: str | None = Field(None, description="Mainland, Oversea or OverseaUSWest, where a model has regions")
    callback_url: str | None = Field(
        None, description="an http(s) URL: the finished task is POSTed there, signed with Standard Webhooks headers"
    )
    run_async: bool | None = Field(None, alias="async", description="true: answer 202 with a task to poll at once")


class StreamParams(BaseModel):
    """Streaming, on ``/v1/images/*`` only: ImageRouter's paths (``/v1/openai/images/*``) ignore these."""

    model_config = ConfigDict(extra="ignore")

    stream: bool | None = Field(
        None,
        description="true: answer text/event-stream with OpenAI's image_generation.* (image_edit.* for edits) "
        "events; the task is stored, billed and listed like any other, and finishes if the client leaves",
    )
    partial_images: int | None = Field(
        None, ge=0, le=3, description="previews streamed before the image, where the model makes them (fewer may come)"
    )


class ImageGeneration(ImageParams, StreamParams):
    """A generation (JSON). Input images make it an edit, on models that take them."""

    model_config = ConfigDict(json_schema_extra={"examples": [_GENERATION]})

    image: ImageString | list[ImageString] | None = Field(None, description=_IMAGE_TEXT)
    images: list[ImageString] | ImageString | None = Field(None, description="reference image URLs (OmniRouters)")
    mask: ImageString | None = Field(None, description="where to edit: transparent pixels, the size of image 1")


class ImageGenerationForm(ImageParams, StreamParams):
    """A generation (multipart/form-data)."""

    image: list[bytes] | None = Field(None, description=_FILE_TEXT)
    images: list[str] | None = Field(None, description="reference image URLs (OmniRouters)")
    mask: bytes | None = Field(None, description="where to edit: transparent pixels, the size of image 1")


class ImageEdit(ImageGeneration):
    """An edit (JSON): at least one input image."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_GENERATION, "prompt": "add snow", "image": PIXEL}]})

    image: ImageString | Annotated[list[ImageString], Field(min_length=1)] = Field(description=_IMAGE_TEXT)


class ImageEditForm(ImageGenerationForm):
    """An edit (multipart/form-data): at least one input image file."""

    image: list[bytes] = Field(min_length=1, description=_FILE_TEXT)


class ImageQuery(BaseModel):
    """Query parameters of a create; each may also come in the body."""

    run_async: bool | None = Field(None, alias="async", description="true: answer 202 with a task to poll at once")
    callback_url: str | None = Field(None, description="an http(s) URL to POST the finished task to")
