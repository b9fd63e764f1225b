"""The catalog as data: each public model's capabilities, price and deployments.

Every ``*.yaml`` in ``catalog/data`` holds ``models: [...]``; ``--config FILE`` adds or
replaces entries by id. Validation of requests reads these capabilities; nothing else does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Capability = Literal["generate", "edit", "mask", "multi_image", "panorama"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceRule(_Strict):
    """First rule whose ``when`` matches the request gives the price per image."""

    when: dict[str, str | int] = Field(default_factory=dict)  # keys: quality, size, resolution, mode
    per_image: float


class Price(_Strict):
    per_image: float | None = None  # flat price
    rules: list[PriceRule] = Field(default_factory=list)
    estimate: bool = False  # true where the list price is our estimate
    note: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Price":
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
        if self.estimate:
            out["estimate"] = True
        if self.note:
            out["note"] = self.note
        return out


class SizeRule(_Strict):
    """Free-form WxH within bounds (e.g. gpt-image-2: multiples of 16, ratio 1:3..3:1)."""

    min_side: int = 64
    max_side: int = 4096
    multiple_of: int = 1
    max_pixels: int | None = None
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
    capabilities: list[Capability] = Field(default_factory=lambda: ["generate"])
    sizes: list[str] | None = None  # fixed WxH list
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
    max_images: int = 0  # reference/edit inputs accepted
    qualities: list[str] | None = None
    styles: list[str] | None = None
    backgrounds: list[str] | None = None
    formats: list[str] = Field(default_factory=lambda: ["png", "jpeg", "webp"])
    supports_seed: bool = True
    supports_negative_prompt: bool = False
    max_prompt_chars: int = 32000
    prompt_required: bool = True
    sync: bool = True  # whether a sync request is sensible (fast) for this model
    price: Price
    deployments: list[DeploymentSpec]

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if not self.deployments:
            raise ValueError(f"model {self.id} has no deployments")
        if self.sizes is None and self.size_rule is None and self.resolutions is None:
            raise ValueError(f"model {self.id} declares no sizes, size_rule or resolutions")
        return self


class CatalogFile(_Strict):
    models: list[ModelSpec]
