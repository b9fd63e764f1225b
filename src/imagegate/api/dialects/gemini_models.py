"""The requests and answers of the Gemini routes (Google's Generative Language API), as checked and
as documented.

Google's REST API reads proto JSON, so each field is accepted in camelCase (as Google's SDKs
send it) and in snake_case. Fields that do not concern an image (tools, safety settings, system
instructions, thinking) are accepted and ignored, as a client written for Gemini sends them;
those that would change the picture are checked and go to validation.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, JsonValue


def _both(camel: str, snake: str) -> AliasChoices:
    return AliasChoices(camel, snake)


class _Proto(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class InlineData(_Proto):
    mime_type: str = Field(
        "", validation_alias=_both("mimeType", "mime_type"), serialization_alias="mimeType", examples=["image/png"]
    )
    data: str = Field(min_length=1, description="the image, base64")


class Part(_Proto):
    text: str | None = None
    inline_data: InlineData | None = Field(
        None, validation_alias=_both("inlineData", "inline_data"), serialization_alias="inlineData"
    )
    file_data: JsonValue | None = Field(
        None,
        validation_alias=_both("fileData", "file_data"),
        serialization_alias="fileData",
        description="not served: send images inline",
    )


class Content(_Proto):
    role: str | None = Field(None, description="user (the only role a generation reads)")
    parts: list[Part] = Field(default_factory=list)


class ImageConfig(_Proto):
    aspect_ratio: str | None = Field(
        None, validation_alias=_both("aspectRatio", "aspect_ratio"), serialization_alias="aspectRatio"
    )
    image_size: str | None = Field(
        None,
        validation_alias=_both("imageSize", "image_size"),
        serialization_alias="imageSize",
        description="1K, 2K or 4K, as the model has them",
    )


class GenerationConfig(_Proto):
    response_modalities: list[str] | None = Field(
        None,
        validation_alias=_both("responseModalities", "response_modalities"),
        serialization_alias="responseModalities",
        description="must include IMAGE; TEXT may come with it",
    )
    candidate_count: int | None = Field(
        None,
        ge=1,
        le=10,
        validation_alias=_both("candidateCount", "candidate_count"),
        serialization_alias="candidateCount",
        description="how many images (a model may allow fewer)",
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    image_config: ImageConfig | None = Field(
        None, validation_alias=_both("imageConfig", "image_config"), serialization_alias="imageConfig"
    )


_EXAMPLE: dict[str, JsonValue] = {
    "contents": [{"role": "user", "parts": [{"text": "a lighthouse at dusk"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": "1K"}},
}


class GenerateContentRequest(_Proto):
    """A generation: the text parts are the prompt; inline images make it an edit (several: a
    multi-image request), on models that take them."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    contents: list[Content] = Field(min_length=1)
    generation_config: GenerationConfig | None = Field(
        None, validation_alias=_both("generationConfig", "generation_config"), serialization_alias="generationConfig"
    )


class StreamQuery(BaseModel):
    alt: str | None = Field(None, description="sse: server-sent events (the only stream format served)")
    key: str | None = Field(None, description="an imagegate API key (or the x-goog-api-key header)")


class KeyQuery(BaseModel):
    key: str | None = Field(None, description="an imagegate API key (or the x-goog-api-key header)")


class Blob(BaseModel):
    mimeType: str  # noqa: N815  (Google's name)
    data: str


class FileData(BaseModel):
    mimeType: str  # noqa: N815
    fileUri: str  # noqa: N815


class ResponsePart(BaseModel):
    text: str | None = None
    inlineData: Blob | None = None  # noqa: N815
    fileData: FileData | None = Field(None, description="a signed link, where the image was not kept as base64")  # noqa: N815


class ResponseContent(BaseModel):
    role: str
    parts: list[ResponsePart]


class Candidate(BaseModel):
    content: ResponseContent
    finishReason: str  # noqa: N815  (Google's name)
    index: int


class UsageMetadata(BaseModel):
    promptTokenCount: int  # noqa: N815
    candidatesTokenCount: int  # noqa: N815
    totalTokenCount: int  # noqa: N815


class GenerateContentResponse(BaseModel):
    candidates: list[Candidate]
    usageMetadata: UsageMetadata  # noqa: N815
    modelVersion: str  # noqa: N815
    responseId: str  # noqa: N815


class GoogleStatus(BaseModel):
    code: int
    message: str
    status: str = Field(examples=["INVALID_ARGUMENT"])


class GoogleError(BaseModel):
    """Google's error envelope."""

    error: GoogleStatus


class GoogleModel(BaseModel):
    name: str = Field(examples=["models/Nano-Banana2"])
    baseModelId: str  # noqa: N815
    version: str
    displayName: str  # noqa: N815
    description: str
    inputTokenLimit: int  # noqa: N815
    outputTokenLimit: int  # noqa: N815
    supportedGenerationMethods: list[str]  # noqa: N815


class GoogleModelList(BaseModel):
    models: list[GoogleModel]
