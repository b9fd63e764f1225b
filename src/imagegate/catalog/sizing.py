"""Size arithmetic shared by validation and adapters: parse, resolve tiers, fit into a model's rule.

Validation and the adapters call the same functions here, so a size validation produces is one
the adapter sends unchanged: :func:`fit_rule` returns an in-rule size as it is.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from imagegate.catalog.schema import ModelSpec, SizeRule

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[x×*:X]\s*(\d{1,5})\s*$")
_RATIO_RE = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*[:x/]\s*(\d{1,3}(?:\.\d+)?)\s*$")

#: long side in pixels for each resolution tier
TIER_LONG_SIDE = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}

#: how a side lands on the rule's multiple when no bound forced a scaling
Rounding = Literal["down", "nearest"]


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


# -- size rules --------------------------------------------------------------------------------


def rule_problems(rule: SizeRule, w: int, h: int) -> list[str]:
    """What WxH breaks in the rule, in words for a 400 (empty: it complies)."""
    problems = []
    if min(w, h) < rule.min_side or max(w, h) > rule.max_side:
        problems.append(f"sides between {rule.min_side} and {rule.max_side}")
    if rule.multiple_of > 1 and (w % rule.multiple_of or h % rule.multiple_of):
        problems.append(f"sides multiples of {rule.multiple_of}")
    if rule.max_pixels and w * h > rule.max_pixels:
        problems.append(f"at most {rule.max_pixels} pixels")
    if rule.min_pixels and w * h < rule.min_pixels:
        problems.append(f"at least {rule.min_pixels} pixels")
    ratio = w / h
    if (rule.min_ratio and ratio < rule.min_ratio - 1e-9) or (rule.max_ratio and ratio > rule.max_ratio + 1e-9):
        low = f"{rule.min_ratio:g}" if rule.min_ratio else "any"
        high = f"{rule.max_ratio:g}" if rule.max_ratio else "any"
        problems.append(f"aspect ratio between {low} and {high}")
    return problems


def _clamp_ratio(rule: SizeRule, w: float, h: float) -> tuple[float, float]:
    """Too elongated: keep the long side and widen the short one."""
    if rule.max_ratio and w / h > rule.max_ratio:
        return w, w / rule.max_ratio
    if rule.min_ratio and w / h < rule.min_ratio:
        return h * rule.min_ratio, h
    return w, h


def _scale(rule: SizeRule, w: float, h: float) -> float:
    """Down to the side and pixel ceilings, then up to the floors (a floor wins over a ceiling)."""
    scale = min(1.0, rule.max_side / max(w, h))
    if rule.max_pixels:
        scale = min(scale, math.sqrt(rule.max_pixels / (w * h)))
    if min(w, h) * scale < rule.min_side:
        scale = max(scale, rule.min_side / min(w, h))
    if rule.min_pixels and w * h * scale * scale < rule.min_pixels:
        scale = max(scale, math.sqrt(rule.min_pixels / (w * h)))
    return scale


def fit_rule(rule: SizeRule, w: int, h: int, rounding: Rounding = "down") -> tuple[int, int]:
    """WxH brought inside the rule, keeping its shape as far as the rule allows.

    The ratio is clamped first, then the size scaled to the ceilings or floors; each side lands on
    the rule's multiple rounded away from the bound that forced a scaling (down after shrinking, up
    after growing, else per ``rounding``) and within the side bounds. Of the neighbouring multiples,
    the first that complies wins, so the answer keeps the rule wherever the rule can be kept.
    A size that already complies comes back unchanged.
    """
    if not rule_problems(rule, w, h):
        return w, h
    x, y = _clamp_ratio(rule, float(w), float(h))
    scale = _scale(rule, x, y)
    x, y = x * scale, y * scale
    m = max(rule.multiple_of, 1)
    lo, hi = math.ceil(rule.min_side / m) * m, max(m, rule.max_side // m * m)

    def land(v: float, how: str) -> int:
        steps = math.floor(v / m) if how == "down" else math.ceil(v / m) if how == "up" else round(v / m)
        return min(hi, max(lo, max(1, steps) * m))

    how = "down" if scale < 1 else "up" if scale > 1 else rounding
    first = (land(x, how), land(y, how))
    others = [(land(x, a), land(y, b)) for a in ("down", "up") for b in ("down", "up")]
    for cand in (first, *sorted(others, key=lambda c: abs(math.log((c[0] / c[1]) / (x / y))))):
        if not rule_problems(rule, *cand):
            return cand
    return first


def conform(spec: ModelSpec, w: int, h: int, rounding: Rounding = "down") -> tuple[int, int]:
    """A size the model takes: a listed size as is, else fitted into its rule, else its nearest listed size."""
    if spec.sizes and f"{w}x{h}" in spec.sizes:
        return w, h
    if spec.size_rule is not None:
        return fit_rule(spec.size_rule, w, h, rounding)
    if spec.sizes:
        return parse_size(nearest_size(w, h, spec.sizes)) or (w, h)
    return w, h


def tier_size(spec: ModelSpec, tier: str | None, ratio: float, label: str | None = None) -> tuple[int, int]:
    """The WxH a resolution tier and aspect ratio stand for on this model (a tier means 'up to' here).

    Where the model's ``size_table`` lists the ratio (``label``, as the client wrote it) at that
    tier, that entry: it is what the upstream makes.
    """
    tier = tier or spec.default_resolution or (spec.resolutions[0] if spec.resolutions else "1K")
    listed = (spec.size_table or {}).get(tier, {}).get(label or "")
    if listed and (dims := parse_size(listed)):
        return dims
    w, h = tier_dims(tier, ratio)
    if spec.size_rule is not None:
        return fit_rule(spec.size_rule, w, h)
    if spec.sizes and not spec.resolutions:
        return parse_size(nearest_size(w, h, spec.sizes)) or (w, h)
    return w, h


def table_entry(spec: ModelSpec, w: int, h: int) -> tuple[str, str] | None:
    """(aspect ratio, tier) whose output in the model's size table is exactly WxH."""
    label = f"{w}x{h}"
    for tier, row in (spec.size_table or {}).items():
        for ratio, size in row.items():
            if size == label:
                return ratio, tier
    return None
