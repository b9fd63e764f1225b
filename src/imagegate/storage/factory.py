"""The store a process uses, chosen by one setting, so the embedded and cluster profiles share every other line."""

from __future__ import annotations

from urllib.parse import urlsplit

from imagegate.settings import Settings
from imagegate.storage.base import Storage
from imagegate.storage.local import LocalStorage
from imagegate.storage.s3 import S3Storage


def open_storage(settings: Settings) -> Storage:
    """``storage_url`` unset: local disk under ``files_dir``; ``s3://BUCKET[/PREFIX]``: that bucket, at
    ``s3_endpoint_url`` when set (any S3-compatible server), else AWS. A URL we cannot use stops
    start-up here rather than failing the first generation."""
    if not settings.storage_url:
        return LocalStorage(settings.files_dir)
    url = urlsplit(settings.storage_url)
    if url.scheme != "s3" or not url.netloc or url.query or url.fragment:
        raise ValueError(f"storage_url must look like s3://BUCKET[/PREFIX], not {settings.storage_url!r}")
    return S3Storage(
        url.netloc,
        url.path,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        public_url=settings.s3_public_url,
    )
