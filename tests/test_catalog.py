"""The catalog as data: every entry loads, names are unique, every deployment has an adapter and a fake,
and under the sandbox every model produces real images through its real adapter."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imagegate.catalog import Catalog, builtin_specs
from imagegate.catalog.validate import build_request
from imagegate.domain import ImageInput
from imagegate.engine.router import Router
from imagegate.media import synth
from imagegate.providers.registry import registered
from imagegate.testing.fakes.common import fake_modules
from imagegate.testing.sandbox import Sandbox

SEED_MODELS = [
    "test/test",
    "Nano-Banana2",
    "GPT-image-2",
    "gpt-image-2-lite",
    "Kling:3.0-omni",
    "Seedream:4.5",
    "Hunyuan-3d-2.0",
    "dall-e-3",
    "dall-e-2",
    "stable-diffusion-3",
    "flux-1-pro",
    "midjourney-v6",
]


def test_seed_models_present_with_exact_ids() -> None:
    cat = Catalog.load(env={})
    for name in SEED_MODELS:
        m = cat.get(name)
        assert m is not None and m.id == name, name
    assert cat.get("openai/gpt-image-1").id == "gpt-image-1"  # ImageRouter's spelling


def test_every_deployment_has_adapter_and_fake() -> None:
    adapters, fakes = registered(), fake_modules()
    for spec in builtin_specs():
        for d in spec.deployments:
            assert d.provider in adapters, (spec.id, d.provider)
            assert d.provider == "builtin" or d.provider in fakes, (spec.id, d.provider)


def test_not_ready_without_credentials_and_reason() -> None:
    cat = Catalog.load(env={})
    m = cat.get("dall-e-3")
    assert not m.ready and "OPENAI_API_KEY" in (m.not_ready_reason or "")
    assert cat.get("test/test").ready
    assert Catalog.load(env={"OPENAI_API_KEY": "sk-x"}).get("dall-e-3").ready


def test_duplicate_names_are_refused() -> None:
    specs = builtin_specs()
    twin = specs[0].model_copy(update={"id": "other", "aliases": [specs[0].id]})
    with pytest.raises(ValueError, match="used by both"):
        Catalog([*specs, twin], env={})


def test_price_rules_pick_by_quality_and_size() -> None:
    m = Catalog.load(env={}).get("dall-e-3")
    hd = m.spec.price.unit({"quality": "hd", "size": "1024x1024"})
    std = m.spec.price.unit({"quality": "standard", "size": "1024x1024"})
    assert hd > std > 0


def _png(size: tuple[int, int], mode: str = "RGB") -> ImageInput:
    buf = io.BytesIO()
    Image.new(mode, size, (90, 120, 150) if mode == "RGB" else (0, 0, 0, 0)).save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png", width=size[0], height=size[1])


@pytest.mark.parametrize("model_id", [s.id for s in builtin_specs()])
async def test_sandbox_serves_every_model(model_id: str) -> None:
    """Each catalog model, through its first deployment's real adapter, against its provider's fake."""
    sandbox = Sandbox(delay_ms=0)
    cat = Catalog.load(sandbox=True)
    model = cat.get(model_id)
    caps = model.spec.capabilities
    images, mask = [], None
    if "generate" not in caps:
        images = [_png((1024, 1024))]
        mask = _png((1024, 1024), "RGBA") if "mask" in caps else None
    req = build_request(model, {"prompt": "a quiet harbour at dawn"}, images=images, mask=mask)

    class Clients:
        def client_for(self, dep):  # type: ignore[no-untyped-def]
            return sandbox.client(dep.provider) if dep.provider != "builtin" else None

    router = Router(Clients(), poll_interval=0.0, retries=0)

    async def noop(*_):  # type: ignore[no-untyped-def]
        return None

    out = await router.run(model, req, on_submit=noop, on_progress=noop)
    if any(i.data is None for i in out.result.images):
        out.result.images = await router.provider(model, out.deployment).download_all(out.result.images)
    assert len(out.result.images) >= 1
    img = Image.open(io.BytesIO(out.result.images[0].data))
    img.load()
    assert img.size[0] >= 64 and img.size[1] >= 64
    if "panorama" in caps:
        assert img.size[0] == 2 * img.size[1]


@pytest.mark.parametrize("model_id", [s.id for s in builtin_specs()])
async def test_sandbox_makes_n_images_of_the_asked_size(model_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each model's adapter asks its fake for ``n`` images of the validated size and gets them: as many
    as asked (fewer would be charged as fewer), each of the size's aspect ratio. The fakes draw flat
    pictures here: only the count and the pixel size matter."""
    monkeypatch.setattr(synth, "render", lambda prompt, w, h, **_: Image.new("L", (w, h), 128))
    sandbox = Sandbox(delay_ms=0)
    model = Catalog.load(sandbox=True).get(model_id)
    caps, spec = model.spec.capabilities, model.spec
    images = [] if "generate" in caps else [_png((1024, 1024))]
    mask = _png((1024, 1024), "RGBA") if images and "mask" in caps else None
    n = min(2, spec.max_n)
    params: dict[str, object] = {"prompt": "a quiet harbour at dawn", "n": n}
    if spec.sizes:
        params["size"] = spec.sizes[-1]
    elif spec.default_size and "generate" in caps:
        params["size"] = spec.default_size
    req = build_request(model, params, images=images, mask=mask)

    class Clients:
        def client_for(self, dep):  # type: ignore[no-untyped-def]
            return sandbox.client(dep.provider) if dep.provider != "builtin" else None

    router = Router(Clients(), poll_interval=0.0, retries=0)

    async def noop(*_):  # type: ignore[no-untyped-def]
        return None

    out = await router.run(model, req, on_submit=noop, on_progress=noop)
    got = await router.provider(model, out.deployment).download_all(out.result.images)
    assert len(got) == n, f"asked for {n} images, got {len(got)}"
    sizes = {Image.open(io.BytesIO(i.data)).size for i in got}
    assert len(sizes) == 1, sizes
    w, h = sizes.pop()
    want = (req.width / req.height) if req.width and req.height else 1.0  # an edit's auto: the square input
    if "panorama" in caps:
        want = 2.0
    assert abs(w / h / want - 1) < 0.05, (w, h, req.width, req.height)
