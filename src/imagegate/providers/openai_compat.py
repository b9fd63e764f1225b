"""Any OpenAI-shaped Images upstream (xAI, Together, Recraft, other gateways, our own seeds).

It shares the OpenAI adapter's transport, edit multipart, mask conversion, response parsing
and error mapping; only the body differs: the common fields pass through as validation left
them (the size validation accepted against the model's catalog entry, as ``WxH``), and
``deployment.options`` reshape them for the upstream:

- ``size_field``: name of the size field, or ``none`` to drop it (default ``size``)
- ``sizes``: list of ``WxH`` the upstream takes; requested sizes snap to the nearest
- ``rename``: ``{our_field: their_field}``; ``drop``: ``[field, ...]``
- ``extra_body``: fields merged into every body (e.g. ``{"watermark": false}``)
- ``defaults``: fields sent only where the client set none (e.g. ``{"moderation": "low"}``)
- ``response_format``: send this value (``b64_json`` / ``url``); unset: send nothing
- ``n_field``: name of the count field, or ``none`` to fan every image out; a call carries at most the
  model's ``images_per_call`` (catalog; default its ``max_n``)
- ``generations_path`` / ``edits_path``: default ``/images/generations`` / ``/images/edits``
- ``image_field``: multipart name of edit inputs (default ``image[]``)
- ``auth_header`` / ``auth_scheme``: default ``Authorization`` / ``Bearer``
"""

from __future__ import annotations

from typing import Any

from imagegate.catalog import sizing
from imagegate.domain import ImageRequest
from imagegate.providers.openai import OpenAIProvider, alpha_mask, with_defaults
from imagegate.providers.toolkit import FilePart, per_call

PASS_THROUGH = (
    "quality",
    "style",
    "background",
    "moderation",
    "output_format",
    "output_compression",
    "user",
    "seed",
    "negative_prompt",
)


class OpenAICompatProvider(OpenAIProvider):
    name = "openai_compat"
    kind = "sync"
    # No real default: a deployment names its upstream. ``.invalid`` never resolves, so a
    # misconfigured deployment fails as unavailable instead of sending its key elsewhere.
    default_base_url = "http://openai-compat.invalid/v1"

    @property
    def opts(self) -> dict[str, Any]:
        return self.deployment.options

    def headers(self) -> dict[str, str]:
        header = str(self.opts.get("auth_header", "Authorization"))
        scheme = str(self.opts.get("auth_scheme", "Bearer"))
        key = self.credential("api_key")
        return {header: f"{scheme} {key}" if scheme else key}

    def per_call_n(self) -> int:
        if str(self.opts.get("n_field", "n")).lower() == "none":
            return 1
        return per_call(self.spec)

    def endpoint(self, mode: str) -> str:
        if mode == "edit":
            return self.base_url + str(self.opts.get("edits_path", "/images/edits"))
        return self.base_url + str(self.opts.get("generations_path", "/images/generations"))

    def size_value(self, req: ImageRequest) -> str | None:
        """The validated size as given: a lenient gateway takes any WxH (``options.sizes`` narrows it)."""
        if not (req.width and req.height):
            return None
        sizes = [str(s) for s in self.opts.get("sizes") or []]
        if sizes and req.size not in sizes:
            return sizing.nearest_size(req.width, req.height, sizes)
        return req.size

    def fields(self, req: ImageRequest, n: int) -> dict[str, Any]:
        f: dict[str, Any] = {"model": self.deployment.model, "prompt": req.prompt, "n": n}
        size_field = str(self.opts.get("size_field", "size"))
        if size_field.lower() != "none":
            f[size_field] = self.size_value(req)
        for name in PASS_THROUGH:
            f[name] = getattr(req, name)
        if req.output_format == "png":
            f["output_compression"] = None
        if req.mode == "edit":
            f["input_fidelity"] = req.input_fidelity
        if self.opts.get("response_format"):
            f["response_format"] = self.opts["response_format"]
        if str(self.opts.get("n_field", "n")).lower() == "none":
            f.pop("n")
        elif self.opts.get("n_field"):
            f[self.opts["n_field"]] = f.pop("n")
        for old, new in (self.opts.get("rename") or {}).items():
            if old in f:
                f[new] = f.pop(old)
        for name in self.opts.get("drop") or []:
            f.pop(name, None)
        f = with_defaults(f, self.opts)
        f.update(self.opts.get("extra_body") or {})
        return f

    def files(self, req: ImageRequest) -> list[FilePart]:
        field = str(self.opts.get("image_field", "image[]"))
        out: list[FilePart] = []
        for i, img in enumerate(req.images[: max(1, self.spec.max_images)]):
            out.append((field, (f"image_{i}.{img.mime.split('/')[-1]}", img.data, img.mime)))
        if req.mask is not None and req.images:
            first = req.images[0]
            out.append(("mask", ("mask.png", alpha_mask(req.mask, (first.width, first.height)), "image/png")))
        return out
