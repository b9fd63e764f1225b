"""imagegate's own vocabulary: requests, results, tasks and errors. Imports nothing else of imagegate."""

from imagegate.domain.errors import STATUS_BY_CODE, TYPE_BY_STATUS, ErrorCode, GatewayError, UpstreamError
from imagegate.domain.images import (
    MIME, GeneratedImage, ImageInput, ImageRequest, Mode, OutputFormat, ProviderResult, ResponseFormat,
)
from imagegate.domain.tasks import TaskStatus

__all__ = [
    "MIME", "STATUS_BY_CODE", "TYPE_BY_STATUS", "ErrorCode", "GatewayError", "GeneratedImage", "ImageInput",
    "ImageRequest", "Mode", "OutputFormat", "ProviderResult", "ResponseFormat", "TaskStatus", "UpstreamError",
]
