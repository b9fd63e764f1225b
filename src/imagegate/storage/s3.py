"""Images in an S3-compatible bucket (the cluster profile), through aiobotocore.

Any process can then read what any other wrote. Where clients can reach the store
(``public_url``), downloads are redirected to short-lived presigned URLs on that address, so
served images never pass through the API processes; where they cannot (a private store, the
common case), the API streams them.

Why aiobotocore: it is botocore, so credentials come the standard way (environment, shared files,
instance and web-identity roles) and presigning is the reference SigV4 implementation; any
S3-compatible server works through ``endpoint_url``. Its speed is not the bottleneck for images
of at most ~25 MB, and its only cost, the lack of type information, is confined to
:func:`_open_client` and the :class:`S3Client` protocol below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import Protocol, TypedDict

from imagegate.storage.base import StorageError, check_key

log = logging.getLogger("imagegate.storage")

_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"403", "AccessDenied", "Forbidden"})


class _Body(Protocol):
    async def read(self) -> bytes: ...

    async def __aenter__(self) -> _Body: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _GetObjectOutput(TypedDict):
    Body: _Body


class _Exceptions(Protocol):
    ClientError: type[Exception]  # botocore's: every error answer from the server


class S3Client(Protocol):
    """The calls of aiobotocore's S3 client this store makes (aiobotocore ships no type information)."""

    @property
    def exceptions(self) -> _Exceptions: ...

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> object: ...

    async def get_object(self, *, Bucket: str, Key: str) -> _GetObjectOutput: ...

    async def delete_object(self, *, Bucket: str, Key: str) -> object: ...

    async def head_bucket(self, *, Bucket: str) -> object: ...

    async def create_bucket(self, *, Bucket: str, CreateBucketConfiguration: Mapping[str, str] = ...) -> object: ...

    async def generate_presigned_url(self, ClientMethod: str, Params: Mapping[str, str], ExpiresIn: int) -> str: ...


class S3Storage:
    """One bucket, with every key under an optional prefix, through one client per process.

    The client is opened on first use rather than here: it holds an aiohttp session bound to the
    event loop it was made in, and the gateway is built before the server's loop runs. That first
    use also makes the bucket if it is missing, so a new cluster needs no manual step; a key that
    may only read and write objects gets 403 from that check, and the bucket is then taken to exist.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        #: the store's address as clients see it; None: clients cannot reach it, hand out no links
        self.public_url = public_url
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._signer: S3Client | None = None

    def object_key(self, key: str) -> str:
        """Where ``key`` lives in the bucket."""
        return self.prefix + check_key(key)

    def local_path(self, key: str) -> str | None:
        return None

    async def put(self, key: str, data: bytes, mime: str) -> None:
        name = self.object_key(key)
        with self._failures("put", name):
            client = await self._connected()
            await client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=mime)

    async def get(self, key: str) -> bytes | None:
        name = self.object_key(key)
        with self._failures("get", name):
            client = await self._connected()
            try:
                out = await client.get_object(Bucket=self.bucket, Key=name)
            except client.exceptions.ClientError as exc:
                if _error_code(exc) in _MISSING_KEY:
                    return None
                raise
            async with out["Body"] as body:
                return await body.read()

    async def presigned_url(self, key: str, *, expires_in: int, content_type: str) -> str | None:
        """Signed locally with our credentials for ``public_url`` (SigV4 signs the host, so a link
        for the internal address cannot be rewritten afterwards); the server checks the signature
        and the expiry. None without a ``public_url``."""
        if self.public_url is None:
            return None
        name = self.object_key(key)
        with self._failures("presign", name):
            client = await self._signing_client()
            params = {"Bucket": self.bucket, "Key": name, "ResponseContentType": content_type}
            return await client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    async def delete(self, key: str) -> None:
        name = self.object_key(key)
        with self._failures("delete", name):
            client = await self._connected()
            await client.delete_object(Bucket=self.bucket, Key=name)

    async def ping(self) -> None:
        """A real write, as on local disk: reachable, signed right and allowed to put objects."""
        await self.put(".ready", b"ok", "text/plain")

    async def aclose(self) -> None:
        async with self._lock:
            stack, self._stack, self._client, self._signer = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()

    async def _connected(self) -> S3Client:
        if self._client is None:
            async with self._lock:  # concurrent first requests share one client
                if self._client is None:
                    stack = AsyncExitStack()
                    client = await stack.enter_async_context(_open_client(self.endpoint_url, self.region))
                    try:
                        await self._ensure_bucket(client)
                    except BaseException:
                        await stack.aclose()
                        raise
                    self._stack, self._client = stack, client
        return self._client

    async def _signing_client(self) -> S3Client:
        """The client that signs links: the data client when both addresses agree, else one for
        ``public_url`` that only ever signs (no request leaves through it)."""
        if self.public_url == self.endpoint_url:
            return await self._connected()
        await self._connected()  # the exit stack, and the bucket, exist from here on
        if self._signer is None:
            async with self._lock:
                if self._signer is None and self._stack is not None:
                    self._signer = await self._stack.enter_async_context(_open_client(self.public_url, self.region))
        if self._signer is None:
            raise StorageError("the store was closed")
        return self._signer

    async def _ensure_bucket(self, client: S3Client) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except client.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in _DENIED:
                log.warning("cannot check bucket %s (%s); assuming it exists", self.bucket, code)
                return
            if code not in _MISSING_BUCKET:
                raise
        log.info("creating bucket %s", self.bucket)
        try:
            if self.region and self.region != "us-east-1":  # AWS wants the region named, except this one
                await client.create_bucket(
                    Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
                )
            else:
                await client.create_bucket(Bucket=self.bucket)
        except client.exceptions.ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # another of our processes was first
                raise

    @contextlib.contextmanager
    def _failures(self, op: str, name: str) -> Iterator[None]:
        """botocore's and aiohttp's errors become StorageError, so no caller depends on them."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"S3 {op} of s3://{self.bucket}/{name} failed: {_error_code(exc)}") from exc


def _error_code(exc: BaseException) -> str:
    """botocore puts the server's error code in ``exc.response['Error']['Code']`` (a bare HTTP status
    for HEAD, whose answers have no body); other failures (connection, timeout) are named by type."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    return str(code) if code else type(exc).__name__


def _open_client(endpoint_url: str | None, region: str | None) -> AbstractAsyncContextManager[S3Client]:
    """An aiobotocore S3 client, credentials read the standard botocore way.

    Imported here, not at the top: aiobotocore and aiohttp add ~0.6 s to start-up, which the
    embedded profile and every CLI command would otherwise pay for nothing.
    """
    from aiobotocore import config, session  # type: ignore[import-untyped]  # aiobotocore ships no type information

    cfg = config.AioConfig(
        signature_version="s3v4",
        # S3-compatible servers are addressed by path: bucket subdomains need DNS they rarely have
        s3={"addressing_style": "path"} if endpoint_url else {},
        # botocore >= 1.36 adds CRC checksums to every upload by default, which several
        # S3-compatible servers refuse; send them only where the API requires one
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=64,  # the queue's workers and the API's requests share this client
    )
    client: AbstractAsyncContextManager[S3Client] = session.get_session().create_client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=cfg
    )
    return client
