"""build_request: the catalog's size defaults, 'auto' with input images, refusals naming their
parameter, resolution tiers fitted to a size rule, contradictions."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from imagegate.catalog import Catalog, CatalogModel, builtin_specs, sizing
from imagegate.catalog.schema import ModelSpec
from imagegate.catalog.validate import build_request
from imagegate.domain import GatewayError, ImageInput

CATALOG = Catalog.load(env={})


def model(name: str) -> CatalogModel:
    m = CATALOG.get(name)
    assert m is not None, name
    return m


def image(w: int = 640, h: int = 480) -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "teal").save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png", width=w, height=h)


def custom(**fields: Any) -> CatalogModel:
    """A model from a user's --config: fal's flux/dev with its own size promise."""
    entry = {
        "id": "my/flux",
        "capabilities": ["generate", "edit"],
        "max_images": 1,
        "size_rule": {"min_side": 64, "max_side": 2048},
        "price": {"per_image": 0.01},
        "deployments": [{"id": "my-fal", "provider": "fal", "model": "fal-ai/flux/dev"}],
        **fields,
    }
    return Catalog([ModelSpec.model_validate(entry)], env={}).get("my/flux")  # type: ignore[return-value]


def refusal(m: CatalogModel, params: dict[str, Any], **kw: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        build_request(m, {"prompt": "x", **params}, **kw)
    assert 400 <= info.value.status < 500
    return info.value


# -- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"size": "auto"}, {"size": ""}])
def test_default_size_is_used_when_the_size_is_left_open(params: dict[str, Any]) -> None:
    req = build_request(custom(default_size="256x256"), {"prompt": "a boat", **params})
    assert (req.width, req.height) == (256, 256)


def test_default_size_of_catalog_models() -> None:
    for name, dims in (
        ("dall-e-3", (1024, 1024)),
        ("Seedream:4.5", (2048, 2048)),
        ("fal-ai/flux/dev", (1024, 768)),
        ("Hunyuan-3d-2.0", (1440, 720)),
        ("qwen-image", (1328, 1328)),
    ):
        req = build_request(model(name), {"prompt": "a boat"})
        assert (req.width, req.height) == dims, name


def test_the_client_size_wins_over_the_default() -> None:
    req = build_request(custom(default_size="256x256"), {"prompt": "a boat", "size": "512x384"})
    assert (req.width, req.height) == (512, 384)
    req = build_request(model("test/test"), {"prompt": "a boat", "aspect_ratio": "16:9"})
    assert (req.width, req.height) == (1024, 576) and req.aspect_ratio == "16:9"  # not default_size's square


@pytest.mark.parametrize("name", ["Kling:3.0-omni", "Nano-Banana2", "midjourney-v6"])
def test_default_resolution_and_aspect_ratio(name: str) -> None:
    req = build_request(model(name), {"prompt": "a boat"})
    assert (req.resolution, req.aspect_ratio) == ("1K", "1:1")
    assert (req.width, req.height) == (1024, 1024)  # what resolution=1K + aspect_ratio=1:1 gives


def test_default_aspect_ratio_on_a_size_list_model() -> None:
    m = model("stable-image-ultra")
    req = build_request(m, {"prompt": "a boat"})
    assert req.aspect_ratio == "1:1" and req.width == req.height and req.size in m.spec.sizes


@pytest.mark.parametrize(
    "name", ["gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini", "GPT-image-2", "gpt-image-2-lite"]
)
def test_gpt_image_models_keep_their_upstream_auto(name: str) -> None:
    for params in ({}, {"size": "auto"}):
        req = build_request(model(name), {"prompt": "a boat", **params})
        assert (req.width, req.height, req.resolution, req.aspect_ratio) == (None, None, None, None)
    assert build_request(model(name), {"prompt": "a boat", "size": "1024x1536"}).size == "1024x1536"


def test_every_catalog_model_takes_its_own_defaults() -> None:
    """A default the model itself would refuse is a catalog bug, caught here rather than as a 400."""
    catalog = Catalog.load(env={})
    for spec in builtin_specs():
        m = catalog.get(spec.id)
        assert m is not None, spec.id
        images = [] if "generate" in spec.capabilities else [image(1024, 1024)]
        req = build_request(m, {"prompt": "a boat"}, images=images)
        if req.width is None:
            continue
        if spec.sizes and not spec.size_rule and not spec.resolutions:
            assert req.size in spec.sizes, spec.id
        if spec.size_rule is not None:
            rule = spec.size_rule
            assert rule.min_side <= min(req.width, req.height) and max(req.width, req.height) <= rule.max_side, spec.id


# -- 'auto' with input images -----------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"size": "auto"}])
def test_auto_with_images_keeps_the_input_size(params: dict[str, Any]) -> None:
    for m in (model("test/test"), custom(default_size="256x256"), model("Kling:3.0-omni"), model("Nano-Banana2")):
        req = build_request(m, {"prompt": "dusk", **params}, images=[image(640, 480)])
        assert req.mode == "edit", m.id
        assert (req.width, req.height, req.resolution, req.aspect_ratio) == (None, None, None, None), m.id


def test_an_explicit_size_with_images_is_kept() -> None:
    req = build_request(model("test/test"), {"prompt": "dusk", "size": "320x240"}, images=[image()])
    assert (req.width, req.height) == (320, 240)


# -- refusals name their parameter -----------------------------------------------------------


@pytest.mark.parametrize(
    "name,params,param",
    [
        ("test/test", {"size": "big"}, "size"),
        ("dall-e-3", {"size": "auto"}, "size"),  # no 'auto' here: the default does not hide the refusal
        ("dall-e-3", {"size": "512x512"}, "size"),
        ("GPT-image-2", {"size": "1000x1000"}, "size"),  # not multiples of 16
        ("Kling:3.0-omni", {"resolution": "8K"}, "resolution"),
        ("Kling:3.0-omni", {"aspect_ratio": "5:4"}, "aspect_ratio"),
        ("test/test", {"aspect_ratio": "wide"}, "aspect_ratio"),
        ("gpt-image-1", {"quality": "ultra"}, "quality"),
        ("gpt-image-1", {"seed": 7}, "seed"),
        ("dall-e-3", {"n": 2}, "n"),
        ("test/test", {"n": "two"}, "n"),
        ("test/test", {"output_format": "bmp"}, "output_format"),
        ("test/test", {"response_format": "pdf"}, "response_format"),
        ("test/test", {"background": "transparent", "output_format": "jpeg"}, "background"),
        ("test/test", {"prompt": 7}, "prompt"),
        ("dall-e-3", {"moderation": "low"}, "moderation"),  # a GPT Image parameter: not for DALL-E
        ("test/test", {"moderation": "auto"}, "moderation"),
        ("gpt-image-1", {"moderation": "off"}, "moderation"),
        ("GPT-image-2", {"input_fidelity": "high"}, "input_fidelity"),  # OpenAI: omit it for gpt-image-2
        ("gpt-image-1-mini", {"input_fidelity": "high"}, "input_fidelity"),
        ("dall-e-2", {"input_fidelity": "low"}, "input_fidelity"),
    ],
)
def test_refusals_name_the_parameter(name: str, params: dict[str, Any], param: str) -> None:
    assert refusal(model(name), params).param == param


def test_gpt_image_levels_pass_where_the_catalog_lists_them() -> None:
    req = build_request(model("gpt-image-1.5"), {"prompt": "p", "moderation": "low", "input_fidelity": "high"})
    assert (req.moderation, req.input_fidelity) == ("low", "high")
    assert build_request(model("gpt-image-2"), {"prompt": "p", "moderation": "auto"}).moderation == "auto"


def test_response_format_default_is_the_callers() -> None:
    """The dialect says what an omitted response_format means; the catalog says it for OpenAI's routes."""
    gpt, dalle = model("gpt-image-2"), model("dall-e-3")
    assert gpt.spec.default_response_format == "b64_json" and dalle.spec.default_response_format == "url"
    assert build_request(gpt, {"prompt": "p"}).response_format == "url"
    assert build_request(gpt, {"prompt": "p"}, default_response_format="b64_json").response_format == "b64_json"
    asked = build_request(gpt, {"prompt": "p", "response_format": "url"}, default_response_format="b64_json")
    assert asked.response_format == "url"


def test_image_and_mask_refusals() -> None:
    assert refusal(model("dall-e-3"), {}, images=[image()]).param == "image"
    assert refusal(model("Nano-Banana2"), {}, images=[image()], mask=image()).param == "mask"
    assert refusal(model("test/test"), {}, mask=image()).param == "mask"


# -- tiers fitted to a size rule, contradictions ------------------------------------------------


def test_resolution_tier_is_fitted_into_the_size_rule() -> None:
    spec = model("GPT-image-2").spec
    rule = spec.size_rule
    assert rule is not None
    req = build_request(model("GPT-image-2"), {"prompt": "a wide harbour", "resolution": "4K", "aspect_ratio": "16:9"})
    assert sizing.tier_dims("4K", 16 / 9) == (4096, 2304)  # the tier as such is too large for this model
    assert (req.width, req.height) == (3840, 2160)
    assert req.width % rule.multiple_of == 0 and req.height % rule.multiple_of == 0
    assert req.width * req.height <= (rule.max_pixels or 0)
    assert (req.resolution, req.aspect_ratio) == ("4K", "16:9")


def test_aspect_ratio_that_contradicts_the_size() -> None:
    err = refusal(model("test/test"), {"size": "1024x1024", "aspect_ratio": "16:9"})
    assert err.param == "aspect_ratio" and "contradicts" in err.message
    ok = build_request(model("test/test"), {"prompt": "x", "size": "1920x1080", "aspect_ratio": "16:9"})
    assert (ok.width, ok.height) == (1920, 1080)
