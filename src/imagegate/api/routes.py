"""Every route an app serves, those of included routers too, as one flat list.

FastAPI 0.16x keeps an included router as one entry of ``app.routes`` and matches inside it
lazily, where older versions copied its routes in; what needs every route (a 405's ``Allow``,
which operations of the OpenAPI document need a key) reads them from here, on either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from starlette.routing import BaseRoute


@dataclass(frozen=True, slots=True)
class Served:
    route: BaseRoute  # as declared (an APIRoute, a Route, a Mount)
    path_format: str  # as served, any router prefix included
    methods: frozenset[str]
    path_regex: re.Pattern[str] | None


def served(routes: Sequence[BaseRoute]) -> list[Served]:
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    items: list[Any] = list(contexts(routes)) if contexts is not None else list(routes)
    out = []
    for item in items:
        route = getattr(item, "original_route", item)
        out.append(
            Served(
                route=route,
                path_format=getattr(item, "path_format", None) or "",
                methods=frozenset(getattr(item, "methods", None) or ()),
                path_regex=getattr(item, "path_regex", None),
            )
        )
    return out
