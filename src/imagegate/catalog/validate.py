"""Check a parsed request against a model's declared capabilities and build the ImageRequest.

Every refusal is a 400 naming the parameter and listing what the model allows; no value
is silently replaced. The core calls :func:`build_request` once per submission; nothing else validates.

A request that leaves the size open (no ``size``, ``resolution`` or ``aspect_ratio``, or
``size: auto``) gets the catalog's defaults, so every upstream makes what the catalog promises
rather than its own default:

- with input images, nothing is filled: the output keeps the input's size (an edit's ``auto``);
- a model whose upstream chooses a size itself on ``auto`` (``upstream_auto_size``) stays open;
- else ``default_size`` when the model declares one, as if the client had sent it;
- else ``default_resolution`` / ``default_aspect_ratio``, as if the client had sent those.

``moderation`` and ``input_fidelity`` are GPT Image parameters: a model takes the values its entry
lists (``moderations``, ``input_fidelities``) and refuses any other model's use of them with a 400
naming the parameter, as OpenAI refuses a parameter the model lacks (gpt-image-2 takes no
``input_fidelity``: OpenAI says to omit it). Refusing says plainly that the value will not act.
"""

from __future__ import annotations

from typing import Any

from imagegate.catalog import CatalogModel, sizing
from imagegate.catalog.schema import ModelSpec
from imagegate.domain import ErrorCode, GatewayError, ImageInput, ImageRequest, OutputFormat, ResponseFormat

REGIONS = ("Mainland", "Oversea", "OverseaUSWest")
RESPONSE_FORMATS: dict[str, ResponseFormat] = {"url": "url", "b64_json": "b64_json", "b64_ephemeral": "b64_ephemeral"}
FORMAT_ALIASES: dict[str, OutputFormat] = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}


def _unsupported(param: str, value: Any, allowed: list[str] | tuple[str, ...] | None, model: str) -> GatewayError:
    if not allowed:
        msg = f"model '{model}' does not support '{param}'"
    else:
        msg = f"'{param}'={value!r} is not supported by model '{model}'; allowed: {', '.join(map(str, allowed))}"
    return GatewayError(ErrorCode.unsupported_value, msg, param=param)


def _int(params: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise GatewayError.bad(name, f"'{name}' must be an integer")
    try:
        val = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
    except (TypeError, ValueError):
        val = None
    if val is None:
        raise GatewayError.bad(name, f"'{name}' must be an integer")
    if not lo <= val <= hi:
        raise GatewayError.bad(name, f"'{name}' must be between {lo} and {hi}")
    return val


def _str(params: dict[str, Any], name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise GatewayError.bad(name, f"'{name}' must be a string")
    return raw.strip()


def _choice(
    params: dict[str, Any], name: str, allowed: list[str] | None, model: str, always: tuple[str, ...] = ()
) -> str | None:
    val = _str(params, name)
    if val is None:
        return None
    if val in always:
        return val
    if not allowed or val not in allowed:
        raise _unsupported(name, val, allowed, model)
    return val


def _check_rule(spec: ModelSpec, w: int, h: int, raw: str) -> None:
    rule = spec.size_rule
    assert rule is not None
    problems = sizing.rule_problems(rule, w, h)
    if problems:
        allowed = ", ".join(spec.sizes or []) or "auto"
        raise GatewayError(
            ErrorCode.unsupported_value,
            f"'size'={raw!r} is not supported by model '{spec.id}': needs {'; '.join(problems)} (or one of: {allowed})",
            param="size",
        )


Size = tuple[int | None, int | None, str | None, str | None]


def _size(spec: ModelSpec, params: dict[str, Any]) -> Size:
    """(width, height, resolution, aspect_ratio) from size / resolution / aspect_ratio."""
    raw_size = _str(params, "size")
    res = _resolution(spec, _str(params, "resolution"))
    raw_ar = _str(params, "aspect_ratio")
    ratio = _aspect_ratio(spec, raw_ar)
    if raw_size is not None and raw_size.lower() != "auto":
        return _explicit_size(spec, raw_size, res, raw_ar, ratio)
    if raw_size is not None and not spec.allow_auto_size:
        raise _unsupported("size", raw_size, spec.sizes, spec.id)
    if res is None and ratio is None:
        return None, None, None, None
    w, h = sizing.tier_size(spec, res, ratio or 1.0, raw_ar)
    return w, h, res, raw_ar


def _resolution(spec: ModelSpec, raw: str | None) -> str | None:
    if raw is None:
        return None
    res = sizing.normalize_tier(raw)
    if res is None or not spec.resolutions or res not in spec.resolutions:
        raise _unsupported("resolution", raw, spec.resolutions, spec.id)
    return res


def _aspect_ratio(spec: ModelSpec, raw: str | None) -> float | None:
    if raw is None:
        return None
    ratio = sizing.parse_ratio(raw)
    if ratio is None:
        raise GatewayError.bad("aspect_ratio", "'aspect_ratio' must look like 16:9")
    if spec.aspect_ratios and raw not in spec.aspect_ratios:
        raise _unsupported("aspect_ratio", raw, spec.aspect_ratios, spec.id)
    if not spec.aspect_ratios and not spec.size_rule:
        raise _unsupported("aspect_ratio", raw, None, spec.id)
    return ratio


def _explicit_size(spec: ModelSpec, raw: str, res: str | None, raw_ar: str | None, ratio: float | None) -> Size:
    """A WxH the client named: one of the model's sizes, within its rule, or (ratio-sized models)
    a size whose shape is one of its aspect ratios, at the nearest tier."""
    dims = sizing.parse_size(raw)
    if dims is None:
        raise GatewayError.bad("size", "'size' must be 'auto' or WIDTHxHEIGHT, e.g. 1024x1024")
    w, h = dims
    if spec.sizes and f"{w}x{h}" in spec.sizes:
        pass
    elif spec.size_rule is not None:
        _check_rule(spec, w, h, raw)
    elif spec.resolutions and spec.aspect_ratios and not spec.sizes:
        near = sizing.nearest_ratio(w, h, spec.aspect_ratios)
        if abs((sizing.parse_ratio(near) or 1) / (w / h) - 1) > 0.02:
            shapes = [f"any size with aspect ratio {', '.join(spec.aspect_ratios)}"]
            raise _unsupported("size", raw, shapes, spec.id)
        res = res or sizing.nearest_tier(w, h, spec.resolutions)
        raw_ar = raw_ar or near
    else:
        allowed = ["auto", *(spec.sizes or [])] if spec.allow_auto_size else spec.sizes
        raise _unsupported("size", raw, allowed, spec.id)
    if ratio is not None and abs(ratio / (w / h) - 1) > 0.02:
        raise GatewayError.bad("aspect_ratio", f"'aspect_ratio' {raw_ar} contradicts 'size' {raw}")
    return w, h, res, raw_ar


def size_defaults(model: CatalogModel, params: dict[str, Any], images: list[ImageInput]) -> dict[str, Any]:
    """The size fields to validate: the client's, or the catalog's defaults when it left them open."""
    spec = model.spec
    size = params.get("size")
    auto = (
        size is None
        or size == ""
        or (isinstance(size, str) and size.strip().lower() == "auto" and spec.allow_auto_size)
    )
    if not auto or params.get("resolution") not in (None, "") or params.get("aspect_ratio") not in (None, ""):
        return params
    if images or spec.upstream_auto_size:
        return params
    if spec.default_size:
        return {**params, "size": spec.default_size}
    if spec.default_resolution or spec.default_aspect_ratio:
        filled = {k: v for k, v in params.items() if k != "size"}
        if spec.default_resolution and spec.resolutions:
            filled["resolution"] = spec.default_resolution
        if spec.default_aspect_ratio:
            filled["aspect_ratio"] = spec.default_aspect_ratio
        return filled
    return params


def build_request(
    model: CatalogModel,
    params: dict[str, Any],
    *,
    mode: str = "generate",
    images: list[ImageInput] | None = None,
    mask: ImageInput | None = None,
    default_format: OutputFormat = "png",
    default_response_format: ResponseFormat = "url",
) -> ImageRequest:
    """The validated request; the defaults are what an omitted output / response format means to this client."""
    spec = model.spec
    images = images or []
    prompt = _prompt(spec, params)
    mode = _check_inputs(spec, mode, images, mask)
    n = _int(params, "n", 1, 10) or 1
    if n > spec.max_n:
        raise GatewayError(
            ErrorCode.unsupported_value,
            f"'n'={n} is more than model '{spec.id}' allows (at most {spec.max_n})",
            param="n",
        )
    w, h, res, ar = _size(spec, size_defaults(model, params, images))
    fmt, rf, background = _output(spec, params, default_format, default_response_format)
    seed = _int(params, "seed", 0, 2**32 - 1)
    if seed is not None and not spec.supports_seed:
        raise _unsupported("seed", seed, None, spec.id)
    negative = _str(params, "negative_prompt")
    if negative and not spec.supports_negative_prompt:
        raise _unsupported("negative_prompt", negative, None, spec.id)
    region = _str(params, "input_region")
    if region is not None and region not in REGIONS:
        raise _unsupported("input_region", region, REGIONS, spec.id)
    user = params.get("user")
    if user is not None and not isinstance(user, str):
        raise GatewayError.bad("user", "'user' must be a string")
    return ImageRequest(
        model=spec.id,
        prompt=prompt,
        mode="edit" if mode == "edit" else "generate",
        n=n,
        width=w,
        height=h,
        resolution=res,
        aspect_ratio=ar,
        quality=_choice(params, "quality", spec.qualities, spec.id, always=("auto",)),
        style=_choice(params, "style", spec.styles, spec.id),
        background=background,
        moderation=_choice(params, "moderation", spec.moderations, spec.id),
        input_fidelity=_choice(params, "input_fidelity", spec.input_fidelities, spec.id),
        seed=seed,
        negative_prompt=negative,
        response_format=rf,
        output_format=fmt,
        output_compression=_int(params, "output_compression", 0, 100),
        user=user,
        input_region=region,
        images=images,
        mask=mask,
    )


def _prompt(spec: ModelSpec, params: dict[str, Any]) -> str:
    prompt = params.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise GatewayError.bad("prompt", "'prompt' must be a string")
    prompt = (prompt or "").strip()
    if spec.prompt_required and not prompt:
        raise GatewayError.bad("prompt", f"'prompt' is required for model '{spec.id}'")
    if len(prompt) > spec.max_prompt_chars:
        raise GatewayError.bad("prompt", f"'prompt' is longer than {spec.max_prompt_chars} characters")
    return prompt


def _check_inputs(spec: ModelSpec, mode: str, images: list[ImageInput], mask: ImageInput | None) -> str:
    """The mode the inputs make (input images make an edit), once the model is known to take them."""
    if images or mode == "edit":
        mode = "edit"
        if not images:
            raise GatewayError.bad("image", "'image' is required for an edit")
        caps = set(spec.capabilities)
        if not caps & {"edit", "multi_image"}:
            raise _unsupported("image", "(input images)", None, spec.id)
        if len(images) > 1 and "multi_image" not in caps:
            raise GatewayError(ErrorCode.unsupported_value, f"model '{spec.id}' takes one input image", param="image")
        if len(images) > max(spec.max_images, 1):
            raise GatewayError(
                ErrorCode.unsupported_value,
                f"model '{spec.id}' takes at most {spec.max_images} input images",
                param="image",
            )
    if mask is not None:
        if "mask" not in spec.capabilities:
            raise _unsupported("mask", "(mask)", None, spec.id)
        if not images:
            raise GatewayError.bad("mask", "'mask' needs an 'image' to apply to")
    return mode


def _output(
    spec: ModelSpec, params: dict[str, Any], default_format: OutputFormat, default_rf: ResponseFormat
) -> tuple[OutputFormat, ResponseFormat, str | None]:
    """(output_format, response_format, background)."""
    fmt_raw = _str(params, "output_format")
    fmt = default_format
    if fmt_raw is not None:
        named = FORMAT_ALIASES.get(fmt_raw.lower())
        if named is None or named not in spec.formats:
            raise _unsupported("output_format", fmt_raw, spec.formats, spec.id)
        fmt = named
    rf_raw = _str(params, "response_format") or default_rf
    rf = RESPONSE_FORMATS.get(rf_raw)
    if rf is None:
        raise _unsupported("response_format", rf_raw, list(RESPONSE_FORMATS), spec.id)
    background = _choice(params, "background", spec.backgrounds, spec.id, always=("auto",))
    if background == "transparent" and fmt == "jpeg":
        raise GatewayError.bad("background", "'background'='transparent' needs output_format png or webp")
    return fmt, rf, background


def price_facts(req: ImageRequest) -> dict[str, Any]:
    return {
        "quality": req.quality or "auto",
        "size": req.size or "auto",
        "resolution": req.resolution or "",
        "mode": req.mode,
    }
