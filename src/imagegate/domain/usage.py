"""Token usage in OpenAI's Images shape, the only ``usage`` a response carries.

OpenAI's clients parse ``usage`` strictly (the Vercel AI SDK reads ``input_tokens``,
``output_tokens``, ``total_tokens`` and ``input_tokens_details``), so an adapter that knows
token counts states them in this shape and one that does not gives none; its own figures
(credits, costs, image counts) stay on the task record as ``provider_usage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOKEN_KEYS = ("input_tokens", "output_tokens", "total_tokens")
DETAIL_KEYS = ("image_tokens", "text_tokens")


def token_usage(
    input_tokens: int, output_tokens: int, *, image_tokens: int = 0, total_tokens: int | None = None
) -> dict[str, Any]:
    """OpenAI's ``usage`` from counts an upstream reported (text input is what is not image input)."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": max(0, input_tokens - image_tokens)},
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens if total_tokens is None else total_tokens,
    }


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _details(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, Mapping):
        return None
    return {k: raw[k] for k in DETAIL_KEYS if _count(raw.get(k))}


def openai_usage(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``raw`` as OpenAI's usage, keeping only its known fields; None unless it has every token count.

    Rows written before usage was normalised hold provider shapes (``promptTokenCount``,
    ``{"cost": ...}``): they answer no usage rather than one a client cannot read."""
    if not isinstance(raw, Mapping) or not all(_count(raw.get(k)) for k in TOKEN_KEYS):
        return None
    out: dict[str, Any] = {k: raw[k] for k in TOKEN_KEYS}
    for name in ("input_tokens_details", "output_tokens_details"):
        details = _details(raw.get(name))
        if details:
            out[name] = details
    return out
