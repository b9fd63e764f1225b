"""Every adapter by the name deployments use in the catalog (``provider: openai``).

One explicit table instead of import-time self-registration: the set of adapters is visible in
one place, typed, and complete as soon as this module is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from imagegate.catalog import Deployment
from imagegate.providers.ark import ArkProvider
from imagegate.providers.base import Provider, Resubmit
from imagegate.providers.bfl import BFLProvider
from imagegate.providers.builtin import BuiltinProvider
from imagegate.providers.dashscope import DashScopeProvider
from imagegate.providers.fal import FalProvider
from imagegate.providers.google import GoogleProvider
from imagegate.providers.hunyuan import HunyuanProvider
from imagegate.providers.kling import KlingProvider
from imagegate.providers.midjourney import MidjourneyProvider
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.openai_compat import OpenAICompatProvider
from imagegate.providers.replicate import ReplicateProvider
from imagegate.providers.stability import StabilityProvider
from imagegate.providers.tencent_mps import TencentMpsProvider

_ALL: tuple[type[Provider], ...] = (
    ArkProvider,
    BFLProvider,
    BuiltinProvider,
    DashScopeProvider,
    FalProvider,
    GoogleProvider,
    HunyuanProvider,
    KlingProvider,
    MidjourneyProvider,
    OpenAIProvider,
    OpenAICompatProvider,
    ReplicateProvider,
    StabilityProvider,
    TencentMpsProvider,
)

ADAPTERS: Mapping[str, type[Provider]] = MappingProxyType({cls.name: cls for cls in _ALL})


def provider_class(name: str) -> type[Provider]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {sorted(ADAPTERS)}") from None


def registered() -> dict[str, type[Provider]]:
    return dict(ADAPTERS)


def resubmit_of(deployments: Iterable[Deployment]) -> dict[str, Resubmit]:
    """Per provider, what a task interrupted mid-call does: read off the adapters, never restated in YAML."""
    return {p: provider_class(p).resubmit() for p in sorted({d.provider for d in deployments})}
