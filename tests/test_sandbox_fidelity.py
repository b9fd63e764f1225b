"""Validation and the adapters agree, model by model: what validation accepts is what the upstream receives.

For every catalog model, every size it lists, every resolution x aspect ratio it declares and a couple
of free sizes inside its size rule, the request validation builds runs through the first deployment's
real adapter against its provider's sandbox fake. The fake must have received what validation accepted,
in the upstream's own terms (``WxH``, or aspect ratio + tier), and the image that comes back must decode
to the size validation promised, or, for an upstream sized by aspect ratio, to its documented rule: the
model's ``size_table`` entry, else about the tier's pixel count at that ratio.

The fakes draw a flat stand-in for the synthetic picture (only the pixel count matters here), so the
whole catalog runs in seconds.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.catalog import Catalog, CatalogModel, sizing
from imagegate.catalog.schema import ModelSpec
from imagegate.catalog.validate import build_request
from imagegate.domain import GatewayError, ImageInput, ImageRequest
from imagegate.media import synth
from imagegate.providers.base import Provider
from imagegate.providers.registry import provider_class
from imagegate.testing.fakes.state import Received
from imagegate.testing.sandbox import Sandbox
from tests.providers.conftest import follow

CATALOG = Catalog.load(sandbox=True)
INPUT = (640, 480)  # the input image of edit-only models


@dataclass(frozen=True)
class Sent:
    """How an upstream was told the size: pixels, or an aspect ratio and a tier (None: not sent)."""

    size: tuple[int, int] | None = None
    ratio: str | None = None
    tier: str | None = None


def _dims(text: object, sep: str) -> tuple[int, int] | None:
    if not isinstance(text, str) or sep not in text:
        return None
    w, h = text.split(sep)
    return int(w), int(h)


def _read_bfl(j: dict[str, Any], form: dict[str, str]) -> Sent:
    if "width" in j:
        return Sent(size=(int(j["width"]), int(j["height"])))
    return Sent(ratio=j.get("aspect_ratio"))


def _read_replicate(j: dict[str, Any], form: dict[str, str]) -> Sent:
    inp = j.get("input") or {}
    if inp.get("aspect_ratio") == "custom":
        return Sent(size=(int(inp["width"]), int(inp["height"])))
    return Sent(ratio=inp.get("aspect_ratio"))


def _read_google(j: dict[str, Any], form: dict[str, str]) -> Sent:
    cfg = (j.get("generationConfig") or {}).get("imageConfig") or j.get("parameters") or {}
    return Sent(ratio=cfg.get("aspectRatio"), tier=cfg.get("imageSize"))


def _read_fal(j: dict[str, Any], form: dict[str, str]) -> Sent:
    size = j.get("image_size")
    return Sent(size=(size["width"], size["height"])) if isinstance(size, dict) else Sent()


def _read_midjourney(j: dict[str, Any], form: dict[str, str]) -> Sent:
    m = re.search(r"--ar (\d+:\d+)", str(j.get("prompt") or ""))
    return Sent(ratio=m.group(1) if m else None)


#: provider -> what its submission said about the size, in that provider's documented form
READ = {
    "openai": lambda j, f: Sent(size=_dims(j.get("size"), "x")),
    "openai_compat": lambda j, f: Sent(size=_dims(j.get("size"), "x")),
    "ark": lambda j, f: Sent(size=_dims(j.get("size"), "x")),
    "dashscope": lambda j, f: Sent(size=_dims((j.get("parameters") or {}).get("size"), "*")),
    "hunyuan": lambda j, f: Sent(size=_dims(j.get("Resolution"), ":")),
    "fal": _read_fal,
    "bfl": _read_bfl,
    "replicate": _read_replicate,
    "google": _read_google,
    "stability": lambda j, f: Sent(ratio=f.get("aspect_ratio")),
    "kling": lambda j, f: Sent(ratio=j.get("aspect_ratio"), tier=str(j.get("resolution") or "").upper() or None),
    "midjourney": _read_midjourney,
    "tencent_mps": lambda j, f: Sent(),  # the panorama scene takes no size: the adapter scales the 2:1 output
}


def sent(provider: str, received: Iterable[Received]) -> Sent:
    """The first POST is the submission (polls and downloads are GETs; Tencent's queries come after)."""
    first = next(r for r in received if r.method == "POST")
    body = first.json if isinstance(first.json, dict) else {}
    return READ[provider](body, first.form)


def sized_by_ratio(provider: str, spec: ModelSpec) -> bool:
    return provider in ("google", "stability", "kling", "midjourney", "replicate") or (
        provider == "bfl" and spec.size_rule is None and "mask" not in spec.capabilities
    )


def sends_tier(provider: str, spec: ModelSpec) -> bool:
    """Kling always takes a tier; Google only where the model offers a choice of tiers."""
    return provider == "kling" or (provider == "google" and len(spec.resolutions or []) > 1)


# -- the cases -------------------------------------------------------------------------------


def _free_sizes(spec: ModelSpec) -> list[str]:
    """Two in-rule sizes off the tier grid: one landscape, one portrait."""
    rule = spec.size_rule
    if rule is None:
        return []
    out = []
    for w, h in ((1000, 700), (720, 1250)):
        fw, fh = sizing.fit_rule(rule, w, h)
        assert not sizing.rule_problems(rule, fw, fh), (spec.id, fw, fh)
        out.append(f"{fw}x{fh}")
    return out


def _cases() -> list[Any]:
    out = []
    for model in CATALOG.all():
        spec = model.spec
        params: list[dict[str, str]] = [{"size": s} for s in [*(spec.sizes or []), *_free_sizes(spec)]]
        for tier in spec.resolutions or [None]:
            for ratio in spec.aspect_ratios or []:
                params.append({"aspect_ratio": ratio, **({"resolution": tier} if tier else {})})
        if not params:
            params.append({})  # the size is the input's (FLUX Fill)
        for p in params:
            out.append(pytest.param(spec.id, p, id=f"{spec.id}-{'-'.join(p.values()) or 'auto'}"))
    return out


def _png(size: tuple[int, int], mode: str = "RGB") -> ImageInput:
    buf = io.BytesIO()
    Image.new(mode, size, (90, 120, 150) if mode == "RGB" else (0, 0, 0, 0)).save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png", width=size[0], height=size[1])


def _request(model: CatalogModel, params: dict[str, str]) -> ImageRequest:
    caps = model.spec.capabilities
    images = [] if "generate" in caps else [_png(INPUT)]
    mask = _png(INPUT, "RGBA") if images and "mask" in caps else None
    return build_request(model, {"model": model.id, "prompt": "a quiet harbour", **params}, images=images, mask=mask)


@pytest.fixture(autouse=True)
def flat_pictures(monkeypatch: pytest.MonkeyPatch) -> None:
    def flat(prompt: str, width: int, height: int, *, seed: int | None = None, index: int = 0) -> Image.Image:
        return Image.new("L", (width, height), 128)

    monkeypatch.setattr(synth, "render", flat)


async def _run(adapter: Provider, req: ImageRequest) -> list[bytes]:
    if adapter.kind == "sync":
        result = await adapter.generate(req)
    else:
        result, _, _ = await follow(adapter, await adapter.submit(req), max_polls=10)
    images = await adapter.download_all(result.images)
    return [img.data or b"" for img in images]


def _decoded(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


# -- what each upstream must have received and made -------------------------------------------


def _expected_ratio(spec: ModelSpec, req: ImageRequest, entry: tuple[str, str] | None) -> str:
    """The client's ratio; for a size, its size_table entry's, else the nearest ratio (the documented rule)."""
    if req.aspect_ratio:
        return req.aspect_ratio
    assert req.width and req.height
    return entry[0] if entry else sizing.nearest_ratio(req.width, req.height, spec.aspect_ratios or [])


def _check_ratio_upstream(provider: str, spec: ModelSpec, req: ImageRequest, got: Sent, size: tuple[int, int]) -> None:
    assert req.width and req.height
    entry = sizing.table_entry(spec, req.width, req.height) if not req.aspect_ratio else None
    ratio = _expected_ratio(spec, req, entry)
    tier = (
        req.resolution
        or (entry[1] if entry else None)
        or sizing.nearest_tier(req.width, req.height, spec.resolutions or ["1K"])
    )
    assert got == Sent(ratio=ratio, tier=tier if sends_tier(provider, spec) else None)
    if spec.size_table:
        row = spec.size_table.get(tier) or next(iter(spec.size_table.values()))
        assert size == sizing.parse_size(row[ratio]), f"{ratio} at {tier} is {row[ratio]} in the size table"
        return
    want = sizing.parse_ratio(ratio) or 1.0
    budget = sizing.TIER_LONG_SIDE[tier] ** 2
    assert abs(size[0] / size[1] / want - 1) < 0.04, f"{size} is not {ratio}"
    assert 0.8 <= size[0] * size[1] / budget <= 1.25, f"{size} is not about {tier}'s {budget} pixels"


@pytest.mark.parametrize("model_id,params", _cases())
async def test_the_upstream_receives_what_validation_accepted(model_id: str, params: dict[str, str]) -> None:
    model = CATALOG.get(model_id)
    assert model is not None
    spec, dep = model.spec, model.deployments[0]
    req = _request(model, params)
    sandbox = Sandbox(delay_ms=0)
    http = sandbox.client(dep.provider) if sandbox.has_fake(dep.provider) else httpx.AsyncClient()
    adapter = provider_class(dep.provider)(dep, spec, http)
    sizes = {_decoded(data) for data in await _run(adapter, req)}
    assert len(sizes) == 1
    size = sizes.pop()
    if not (req.width and req.height):
        assert size == INPUT  # an edit's 'auto': the output keeps the input's size
        return
    if dep.provider == "builtin" or dep.provider == "tencent_mps":
        assert size == (req.width, req.height)
        return
    got = sent(dep.provider, sandbox.state(dep.provider).received)
    if sized_by_ratio(dep.provider, spec):
        _check_ratio_upstream(dep.provider, spec, req, got, size)
    else:
        assert got == Sent(size=(req.width, req.height)), "the upstream was sent another size than validation's"
        assert size == (req.width, req.height)


@pytest.mark.parametrize(
    "model_id,size",
    [
        ("GPT-image-2", "256x256"),  # under OpenAI's 655,360-pixel floor
        ("Seedream:4.5", "1024x1024"),  # Seedream 4.5 starts at 2560x1440 pixels
        ("flux-pro-1.0-fill", "512x512"),  # FLUX Fill keeps the input's size: it takes none
    ],
)
def test_validation_refuses_what_the_upstream_cannot_take(model_id: str, size: str) -> None:
    model = CATALOG.get(model_id)
    assert model is not None
    with pytest.raises(GatewayError) as info:
        _request(model, {"size": size})
    assert info.value.param == "size" and 400 <= info.value.status < 500
