"""Loads the catalog and resolves each deployment's credentials from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from imagegate.catalog.schema import CatalogFile, ModelSpec, Price

SANDBOX_SECRET = "sandbox-key"


@dataclass(slots=True)
class Deployment:
    """One upstream place that can serve a catalog model (resolved from the catalog + env)."""

    id: str
    provider: str
    model: str  # the upstream's own model id
    base_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    region: str | None = None
    weight: int = 1
    max_concurrency: int | None = None
    timeout: float = 120.0
    poll_interval: float = 2.0
    options: dict[str, Any] = field(default_factory=dict)
    price: Price | None = None  # overrides the model's price when set
    missing: list[str] = field(default_factory=list)  # env vars lacking: not ready

    @property
    def ready(self) -> bool:
        return not self.missing


@dataclass(slots=True)
class CatalogModel:
    spec: ModelSpec
    deployments: list[Deployment]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def ready(self) -> bool:
        return any(d.ready for d in self.deployments)

    @property
    def not_ready_reason(self) -> str | None:
        if self.ready:
            return None
        missing = sorted({m for d in self.deployments for m in d.missing})
        return "missing credentials: " + ", ".join(missing)

    def price_for(self, deployment: Deployment | None) -> Price:
        if deployment is not None and deployment.price is not None:
            return deployment.price
        return self.spec.price


def _read_yaml(text: str, origin: str) -> list[ModelSpec]:
    data = yaml.safe_load(text) or {}
    try:
        return CatalogFile.model_validate(data).models
    except Exception as exc:  # pydantic's message names the field; add the file
        raise ValueError(f"invalid catalog {origin}: {exc}") from exc


def builtin_specs() -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    data_dir = resources.files("imagegate.catalog") / "data"
    for entry in sorted(data_dir.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            specs.extend(_read_yaml(entry.read_text(encoding="utf-8"), entry.name))
    return specs


class Catalog:
    def __init__(self, specs: list[ModelSpec], *, env: Mapping[str, str] | None = None, sandbox: bool = False):
        env = os.environ if env is None else env
        self.sandbox = sandbox
        self._models: dict[str, CatalogModel] = {}
        self._lookup: dict[str, str] = {}
        for spec in specs:
            deps = [self._resolve(spec, d, env) for d in spec.deployments]
            self._models[spec.id] = CatalogModel(spec=spec, deployments=deps)
        for spec in specs:
            for name in [spec.id, *spec.aliases]:
                owner = self._lookup.get(name)
                if owner is not None and owner != spec.id:
                    raise ValueError(f"catalog name {name!r} is used by both {owner!r} and {spec.id!r}")
                self._lookup[name] = spec.id
                self._lookup.setdefault(name.lower(), spec.id)

    def _resolve(self, spec: ModelSpec, d: Any, env: Mapping[str, str]) -> Deployment:
        creds: dict[str, str] = {}
        missing: list[str] = []
        for name, var in d.credentials.items():
            if self.sandbox:
                creds[name] = SANDBOX_SECRET
            elif env.get(var):
                creds[name] = env[var]
            else:
                missing.append(var)
        base_url = d.base_url
        if base_url and base_url.startswith("env:"):
            base_url = env.get(base_url[4:]) or None
            if base_url is None and not self.sandbox:
                missing.append(d.base_url[4:])
        return Deployment(
            id=d.id,
            provider=d.provider,
            model=d.model,
            base_url=base_url,
            credentials=creds,
            region=d.region,
            weight=d.weight,
            max_concurrency=d.max_concurrency,
            timeout=d.timeout,
            poll_interval=d.poll_interval,
            options=dict(d.options),
            price=d.price,
            missing=missing,
        )

    @classmethod
    def load(
        cls, config: Path | None = None, *, env: Mapping[str, str] | None = None, sandbox: bool = False
    ) -> Catalog:
        specs = {s.id: s for s in builtin_specs()}
        if config is not None:
            for s in _read_yaml(Path(config).read_text(encoding="utf-8"), str(config)):
                specs[s.id] = s
        return cls(list(specs.values()), env=env, sandbox=sandbox)

    def get(self, name: str) -> CatalogModel | None:
        key = self._lookup.get(name) or self._lookup.get(name.lower())
        return self._models.get(key) if key else None

    def all(self) -> list[CatalogModel]:
        return list(self._models.values())
