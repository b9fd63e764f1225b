"""The catalog as data: each public model's capabilities, price and deployments.

Every ``*.yaml`` in ``catalog/data`` holds ``models: [...]``; ``--config FILE`` adds or
replaces entries by id. Validation checks requests against these capabilities and each adapter
maps them onto its upstream's wire (it is built with its model's :class:`ModelSpec`), so a fact
an upstream needs lives here once and both sides read the same value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Capability = Literal["generate", "edit", "mask", "multi_image", "panorama"]
#: resolution tier -> aspect ratio -> the WxH the upstream makes for it
SizeTable = dict[str, dict[str, str]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceRule(_Strict):
    """First rule whose ``when`` matches the request gives the price per image."""

    when: dict[str, str | int] = Field(default_factory=dict)  # keys: quality, size, resolution, mode
    per_image: float


class TokenPrice(_Strict):
    """USD per million tokens, where the upstream bills by token: the cost settled from the usage it reports."""

    text_input: float = Field(0.0, ge=0)
    image_input: float = Field(0.0, ge=0)
    output: float = Field(ge=0)

    def cost(self, usage: Mapping[str, Any] | None) -> float | None:
        """The price of ``usage`` (OpenAI's shape), or None when the upstream reported none."""
        if not usage:
            return None
        details = usage.get("input_tokens_details") or {}
        image = int(details.get("image_tokens") or 0)
        text = int(details.get("text_tokens", int(usage.get("input_tokens") or 0) - image))
        output = int(usage.get("output_tokens") or 0)
        return (text * self.text_input + image * self.image_input + output * self.output) / 1_000_000


class Price(_Strict):
    per_image: float | None = None  # flat price
    rules: list[PriceRule] = Field(default_factory=list)
    #: billed by token: the per-image price is then what is reserved, and the tokens settle the cost
    per_million_tokens: TokenPrice | None = None
    estimate: bool = False  # true where the list price is our estimate
    note: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Price:
        if self.per_image is None and not self.rules:
            raise ValueError("price needs per_image or rules")
        return self

    def unit(self, facts: dict[str, Any]) -> float:
        for rule in self.rules:
            if all(str(facts.get(k)) == str(v) for k, v in rule.when.items()):
                return rule.per_image
        if self.per_image is not None:
            return self.per_image
        return max(r.per_image for r in self.rules)  # unknown combination: the dearest, never under-charge

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"currency": "USD"}
        if self.per_image is not None and not self.rules:
            out["per_image"] = self.per_image
        else:
            out["rules"] = [r.model_dump() for r in self.rules]
            if self.per_image is not None:
                out["default_per_image"] = self.per_image
        if self.per_million_tokens is not None:
            out["per_million_tokens"] = self.per_million_tokens.model_dump()
        if self.estimate:
            out["estimate"] = True
        if self.note:
            out["note"] = self.note
        return out


class SizeRule(_Strict):
    """Free-form WxH within bounds (e.g. gpt-image-2: multiples of 16, ratio 1:3..3:1, a pixel floor).

    Validation refuses what falls outside, and adapters fit a size into the same rule, so both
    read one set of bounds (:func:`imagegate.catalog.sizing.fit_rule`).
    """

    min_side: int = 64
    max_side: int = 4096
    multiple_of: int = 1
    max_pixels: int | None = None
    #: a pixel floor some upstreams enforce (gpt-image-2: 655,360; Seedream 4.5: about 3.7 MP)
    min_pixels: int | None = None
    min_ratio: float | None = None  # w/h lower bound
    max_ratio: float | None = None


class DeploymentSpec(_Strict):
    id: str
    provider: str
    model: str
    base_url: str | None = None
    #: credential name -> environment variable that holds it
    credentials: dict[str, str] = Field(default_factory=dict)
    region: str | None = None
    weight: int = 1
    max_concurrency: int | None = None
    timeout: float = 120.0
    poll_interval: float = 2.0
    options: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None


class ModelSpec(_Strict):
    id: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    owned_by: str = "imagegate"
    capabilities: list[Capability] = Field(default_factory=lambda: list[Capability](["generate"]))
    #: the WxH a client may ask for; defaults to every size of ``size_table``
    sizes: list[str] | None = None
    #: for upstreams asked for an aspect ratio (and a tier) rather than pixels: what each one makes.
    #: A size of the table is sent as its own ratio and tier; any other size as the nearest ratio.
    size_table: SizeTable | None = None
    size_rule: SizeRule | None = None
    default_size: str | None = None
    allow_auto_size: bool = True
    #: the upstream picks the size itself on ``auto`` (GPT Image): an open size stays open, whatever default_size says
    upstream_auto_size: bool = False
    resolutions: list[str] | None = None  # 1K/2K/4K
    aspect_ratios: list[str] | None = None
    default_resolution: str | None = None
    default_aspect_ratio: str | None = None
    max_n: int = 1
    #: images one upstream call can return; a larger ``n`` is fanned out (None: ``max_n``, one call)
    images_per_call: int | None = None
    max_images: int = 0  # reference/edit inputs accepted
    qualities: list[str] | None = None
    styles: list[str] | None = None
    backgrounds: list[str] | None = None
    #: OpenAI's ``moderation`` levels (GPT Image: auto, low); None: the model takes no such parameter
    moderations: list[str] | None = None
    #: OpenAI's ``input_fidelity`` of an edit (gpt-image-1: low, high); None: the model takes none
    input_fidelities: list[str] | None = None
    #: what an omitted ``response_format`` means on OpenAI's own routes (GPT Image answers base64 there)
    default_response_format: Literal["url", "b64_json"] = "url"
    formats: list[str] = Field(default_factory=lambda: ["png", "jpeg", "webp"])
    supports_seed: bool = True
    supports_negative_prompt: bool = False
    max_prompt_chars: int = 32000
    prompt_required: bool = True
    sync: bool = True  # whether a sync request is sensible (fast) for this model
    price: Price
    deployments: list[DeploymentSpec]

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if not self.deployments:
            raise ValueError(f"model {self.id} has no deployments")
        if self.size_table is not None:
            self._check_table(self.size_table)
        if self.sizes is None and self.size_rule is None and self.resolutions is None:
            raise ValueError(f"model {self.id} declares no sizes, size_rule or resolutions")
        return self

    def _check_table(self, table: SizeTable) -> None:
        """Every ratio of the table is one the model offers; the table's sizes are its sizes unless it lists its own."""
        tiers = [t for t in table if t not in ("512", "1K", "2K", "4K")]
        if tiers:
            raise ValueError(f"model {self.id}: size_table tiers {tiers} are not 512, 1K, 2K or 4K")
        ratios = [r for row in table.values() for r in row]
        unknown = sorted(set(ratios) - set(self.aspect_ratios or ratios))
        if unknown:
            raise ValueError(f"model {self.id}: size_table ratios {unknown} are not in aspect_ratios")
        if self.aspect_ratios is None:
            self.aspect_ratios = list(dict.fromkeys(ratios))
        if self.sizes is None:
            self.sizes = list(dict.fromkeys(size for row in table.values() for size in row.values()))


class CatalogFile(_Strict):
    models: list[ModelSpec]
