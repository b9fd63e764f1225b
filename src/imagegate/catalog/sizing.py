"""Size arithmetic shared by validation and adapters: parse, resolve tiers, snap to what a provider takes."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[x×*:X]\s*(\d{1,5})\s*$")
_RATIO_RE = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*[:x/]\s*(\d{1,3}(?:\.\d+)?)\s*$")

#: long side in pixels for each resolution tier
TIER_LONG_SIDE = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}


def parse_size(text: str) -> tuple[int, int] | None:
    """'1024x768', '1024×768', '1024*768' -> (1024, 768); anything else -> None."""
    m = _SIZE_RE.match(text)
    if not m:
        return None
    w, h = int(m.group(1)), int(m.group(2))
    return (w, h) if w > 0 and h > 0 else None


def parse_ratio(text: str) -> float | None:
    m = _RATIO_RE.match(text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    return a / b if a > 0 and b > 0 else None


def normalize_tier(text: str) -> str | None:
    t = text.strip().upper()
    if t in ("1K", "2K", "4K", "512"):
        return t
    return None


def round_to(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


def tier_dims(tier: str, ratio: float, multiple: int = 16) -> tuple[int, int]:
    """Pixel size for a resolution tier and an aspect ratio: the long side is the tier's."""
    long_side = TIER_LONG_SIDE[tier]
    if ratio >= 1:
        return long_side, round_to(long_side / ratio, multiple)
    return round_to(long_side * ratio, multiple), long_side


def ratio_label(w: int, h: int) -> str:
    f = Fraction(w, h).limit_denominator(32)
    return f"{f.numerator}:{f.denominator}"


def nearest_ratio(w: int, h: int, choices: list[str]) -> str:
    """The allowed aspect-ratio string closest to w:h (compared on a log scale)."""
    target = math.log(w / h)
    return min(choices, key=lambda c: abs(math.log(parse_ratio(c) or 1.0) - target))


def nearest_size(w: int, h: int, choices: list[str]) -> str:
    """The allowed WxH closest in shape first, then in area."""

    def score(c: str) -> tuple[float, float]:
        cw, ch = parse_size(c) or (1, 1)
        return (round(abs(math.log((cw / ch) / (w / h))), 3), abs(math.log((cw * ch) / (w * h))))

    return min(choices, key=score)


def nearest_tier(w: int, h: int, tiers: list[str]) -> str:
    long_side = max(w, h)
    return min(tiers, key=lambda t: abs(TIER_LONG_SIDE.get(t, 1024) - long_side))
