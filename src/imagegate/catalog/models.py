"""Loads the catalog and resolves each deployment's credentials from the environment.

Two sandboxes change that resolution, never the adapters: ``sandbox`` (the fakes run in process
and every credential is the sandbox key) and ``sandbox_url`` (a standalone ``imagegate
sandbox-server``: every deployment with an upstream calls ``{sandbox_url}/{provider}`` over real
HTTP with the sandbox key). The base URL keeps the path of the catalog's own base URL
(DashScope's ``/api/v1``) because the fake serves the provider's paths below its prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from imagegate.catalog.schema import CatalogFile, ModelSpec, Price

SANDBOX_SECRET = "sandbox-key"
#: providers that run inside the gateway: no upstream, so no fake, and nothing for a sandbox to replace
LOCAL_PROVIDERS = frozenset({"builtin"})


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


def _sandbox_url(url: str | None, in_process: bool) -> str | None:
    """A standalone sandbox's root, refused where it would be silently ignored or unreachable.

    With both sandboxes the in-process transport would take every call and send the sandbox
    server's prefixed paths to fakes served at the root: a configuration that cannot work.
    """
    if not url:
        return None
    if in_process:
        raise ValueError("sandbox and sandbox_url are exclusive: fakes in process, or a sandbox server, not both")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"sandbox_url must be an http(s) URL such as http://127.0.0.1:8900, not {url!r}")
    return url.rstrip("/")


def builtin_specs() -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    data_dir = resources.files("imagegate.catalog") / "data"
    for entry in sorted(data_dir.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            specs.extend(_read_yaml(entry.read_text(encoding="utf-8"), entry.name))
    return specs


class Catalog:
    def __init__(
        self,
        specs: list[ModelSpec],
        *,
        env: Mapping[str, str] | None = None,
        sandbox: bool = False,
        sandbox_url: str | None = None,
    ):
        env = os.environ if env is None else env
        self.sandbox = sandbox
        self.sandbox_url = _sandbox_url(sandbox_url, sandbox)
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
        upstream = self._sandbox_upstream(d.provider, d.base_url)
        fake = self.sandbox or upstream is not None
        creds: dict[str, str] = {}
        missing: list[str] = []
        for name, var in d.credentials.items():
            if fake:
                creds[name] = SANDBOX_SECRET
            elif env.get(var):
                creds[name] = env[var]
            else:
                missing.append(var)
        base_url = d.base_url
        if upstream is not None:
            base_url = upstream
        elif base_url and base_url.startswith("env:"):
            base_url = env.get(base_url[4:]) or None
            if base_url is None and not fake:
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

    def _sandbox_upstream(self, provider: str, base_url: str | None) -> str | None:
        """The sandbox server's address for this deployment, or None where it keeps its own.

        Only a literal catalog URL lends its path: an ``env:`` URL names one operator's host, not
        a path of the provider's API, and the sandbox replaces it whole.
        """
        if self.sandbox_url is None or provider in LOCAL_PROVIDERS:
            return None
        path = urlsplit(base_url).path.rstrip("/") if base_url and not base_url.startswith("env:") else ""
        return f"{self.sandbox_url}/{provider}{path}"

    @classmethod
    def load(
        cls,
        config: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        sandbox: bool = False,
        sandbox_url: str | None = None,
    ) -> Catalog:
        specs = {s.id: s for s in builtin_specs()}
        if config is not None:
            for s in _read_yaml(Path(config).read_text(encoding="utf-8"), str(config)):
                specs[s.id] = s
        return cls(list(specs.values()), env=env, sandbox=sandbox, sandbox_url=sandbox_url)

    def get(self, name: str) -> CatalogModel | None:
        key = self._lookup.get(name) or self._lookup.get(name.lower())
        return self._models.get(key) if key else None

    def all(self) -> list[CatalogModel]:
        return list(self._models.values())
