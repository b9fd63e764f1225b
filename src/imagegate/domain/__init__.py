"""imagegate's own vocabulary: requests, results, tasks and errors. Imports nothing else of imagegate."""

from imagegate.domain.errors import (
    RETRY_AFTER,
    STATUS_BY_CODE,
    TYPE_BY_STATUS,
    ErrorCode,
    GatewayError,
    UpstreamError,
    shown,
)
from imagegate.domain.images import (
    MIME,
    GeneratedImage,
    ImageInput,
    ImageRequest,
    Mode,
    OutputFormat,
    ProviderResult,
    ResponseFormat,
)
from imagegate.domain.submission import (
    IdempotencyKey,
    ImageRef,
    Outcome,
    PartialImage,
    PendingUpload,
    RunMode,
    StreamEvent,
    Submission,
)
from imagegate.domain.tasks import Caller, OutputImage, TaskError, TaskStatus, TaskView, UploadSlot
from imagegate.domain.usage import openai_usage, token_usage

__all__ = [
    "RETRY_AFTER",
    "MIME",
    "STATUS_BY_CODE",
    "TYPE_BY_STATUS",
    "Caller",
    "ErrorCode",
    "GatewayError",
    "GeneratedImage",
    "IdempotencyKey",
    "ImageInput",
    "ImageRef",
    "ImageRequest",
    "Mode",
    "Outcome",
    "OutputFormat",
    "OutputImage",
    "PartialImage",
    "PendingUpload",
    "ProviderResult",
    "ResponseFormat",
    "RunMode",
    "StreamEvent",
    "Submission",
    "TaskError",
    "TaskStatus",
    "TaskView",
    "UpstreamError",
    "UploadSlot",
    "openai_usage",
    "shown",
    "token_usage",
]
