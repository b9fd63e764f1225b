"""The catalog: models, their capabilities and prices, and the deployments that serve them."""

from imagegate.catalog.models import Catalog, CatalogModel, Deployment, builtin_specs

__all__ = ["Catalog", "CatalogModel", "Deployment", "builtin_specs"]
