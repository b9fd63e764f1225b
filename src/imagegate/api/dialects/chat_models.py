"""The request and answers of ``POST /v1/chat/completions`` with image output, as checked and documented.

The shape is the one OpenRouter and Gemini's OpenAI-compatible endpoint use for image models:
``modalities`` asks for images, ``image_config`` picks the aspect ratio and the size tier, and
the images come back in ``choices[0].message.images`` (``delta.images`` when streamed) as data
URIs. Unknown fields are ignored, as on the Images routes: chat clients send many (``temperature``,
``stream_options``, ...) that mean nothing to an image model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from imagegate.api.dialects.openai_models import PIXEL

_EXAMPLE: dict[str, JsonValue] = {
    "model": "test/test",
    "messages": [{"role": "user", "content": "a lighthouse at dusk"}],
    "modalities": ["image", "text"],
    "image_config": {"aspect_ratio": "16:9"},
}
_EDIT: dict[str, JsonValue] = {
    "model": "test/test",
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "add snow"}, {"type": "image_url", "image_url": {"url": PIXEL}}],
        }
    ],
    "modalities": ["image"],
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputImageUrl(_Lenient):
    url: str = Field(min_length=1, description="an http(s) URL or a data URI of an input image")


class ChatContentPart(_Lenient):
    """A part of a message: ``text``, or ``image_url`` (an input image: the request is an edit)."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: InputImageUrl | str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ChatContentPart] | None = Field(
        None, description="text, or parts; the last user message's text is the prompt, its images the inputs"
    )


class ChatImageConfig(_Lenient):
    aspect_ratio: str | None = Field(None, description="W:H from the model's aspect_ratios", examples=["16:9"])
    image_size: str | None = Field(None, description="a size tier from the model's resolutions: 1K, 2K or 4K")


class ChatImageRequest(_Lenient):
    """A chat completion that makes images. Whether a ratio, tier or number suits the model is
    checked against its catalog entry (GET /v1/models; ``chat_completions: true`` marks the models
    that answer here)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE, _EDIT]})

    model: str = Field(min_length=1, description="an image model id or alias from GET /v1/models")
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    modalities: list[Literal["image", "text"]] | None = Field(
        None, description='["image", "text"] or ["image"]; left out, images are asked for'
    )
    image_config: ChatImageConfig | None = None
    n: int | None = Field(None, ge=1, le=10, description="how many images (a model may allow fewer)")
    stream: bool | None = Field(None, description="true: chat.completion.chunk events (SSE), images in delta.images")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="where the model takes one")
    user: str | None = Field(None, description="an end-user id, recorded and passed on")


class ImageUrl(BaseModel):
    url: str = Field(description="data:image/<format>;base64,...")


class ImageItem(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str = Field(description="the model's text or revised prompt, else empty")
    images: list[ImageItem]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop"]


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    cost: float | None = Field(None, description="what this request cost in USD")


STREAM_DOC: dict[int, dict[str, Any]] = {
    200: {
        "description": "with stream: true, server-sent events: SSE comments while the image is made, then "
        "chat.completion.chunk events (delta.images holds the images) and data: [DONE]",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
