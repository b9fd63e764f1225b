"""JSON responses through orjson (megabytes of base64 encode ~10x faster than with json.dumps)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ts(dt: datetime | None) -> int | None:
    """Unix seconds, as OpenAI's ``created`` fields."""
    return int(dt.timestamp()) if dt is not None else None
