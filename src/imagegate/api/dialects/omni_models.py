"""The Omni API's requests and answers, as checked and as documented.

Unknown fields are refused, at the top level, in ``files_to_upload[]`` and in ``input``: the Omni
API publishes a JSON Schema for each task type's ``input`` with ``additionalProperties: false``,
and a client of such an API expects a misspelt field to be named back rather than dropped
(a ``callbak_url`` ignored would lose the client its result). ``input`` is checked against the
schema of the model group and task type (:func:`imagegate.api.dialects.omni_groups.input_schema`),
which depends on the catalog, so it is an object here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imagegate.api.schemas import TaskErrorObject, UploadSlotObject
from imagegate.api.uploads import ContentType
from imagegate.domain import TaskStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class OmniFile(BaseModel):
    """An input image to upload after the create; the answer's ``uploads[]`` hold where to PUT it."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        min_length=1, description="the input it fills (source_image, images or mask), as the task type takes"
    )
    filename: str = Field(min_length=1, max_length=255, examples=["input.png"])
    content_type: ContentType


class OmniCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"model_group": "omni-image-aio", "task_type": "text_to_image", "input": {"prompt": "a fox"}}]
        },
    )

    model_group: Name = Field(description="a group of GET /api/omni/models", examples=["omni-image-aio"])
    task_type: Name = Field(
        description="text_to_image, single_image_edit, multi_image_edit, inpaint or panorama, as the group offers",
        examples=["text_to_image"],
    )
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="as the task type's input_schema in GET /api/omni/models says (prompt, size, ...; images inline "
        "as URL, data URI or base64, or listed in files_to_upload)",
        examples=[{"prompt": "a clean studio product photo"}],
    )
    files_to_upload: list[OmniFile] | None = Field(None, max_length=32)
    callback_url: str | None = Field(None, description="an http(s) URL: the finished task is POSTed there")


class OmniModelsQuery(BaseModel):
    all: bool = Field(False, description="true: every group, not only the ready ones")


class OmniImage(BaseModel):
    url: str = Field(description="a signed object-storage link that expires")
    width: int | None
    height: int | None
    content_type: str | None


class OmniOutputs(BaseModel):
    images: list[OmniImage]


class OmniQueue(BaseModel):
    position: int | None
    state: Literal["queued"]


class OmniUpload(UploadSlotObject):
    field: str | None = Field(description="the input this slot fills")


class OmniOutputAccess(BaseModel):
    poll_url: str
    outputs: str
    url_ttl_seconds: int


class OmniTask(BaseModel):
    """A task as the Omni API shows it; a create's answer adds ``uploads`` and ``output_access``."""

    portal_task_id: str
    status: TaskStatus
    model_group: str
    task_type: str | None
    model: str
    created_at: int | None
    started_at: int | None
    completed_at: int | None
    poll_url: str
    cost: float | None
    queue_position: int | None = None
    queue: OmniQueue | None = None
    upload_deadline: int | None = Field(None, description="awaiting_upload: Unix seconds by which to PUT the files")
    progress: int | None = None
    outputs: OmniOutputs | None = None
    error: TaskErrorObject | None = None
    uploads: list[OmniUpload] | None = None
    output_access: OmniOutputAccess | None = None


class OmniFileField(BaseModel):
    field: str
    role: Literal["image", "mask"]
    min: int
    max: int


class OmniTaskType(BaseModel):
    task_type: str
    model: str
    input_schema: dict[str, Any] = Field(description="JSON Schema of input")
    output_schema: dict[str, Any] = Field(description="JSON Schema of outputs")
    files: list[OmniFileField]
    price: dict[str, Any]


class OmniGroup(BaseModel):
    model_group: str
    name: str
    description: str
    status: Literal["ready", "not_ready"]
    task_types: list[OmniTaskType]
    owned_by: str | None = None
    not_ready_reason: str | None = None


class OmniModels(BaseModel):
    object: Literal["list"]
    model_groups: list[OmniGroup]
    data: list[OmniGroup]
    default_group: str
