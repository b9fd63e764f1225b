"""Storage behind one contract: local disk and a real S3 server (SeaweedFS on loopback, signatures
checked) pass the same tests; then what only one of them has (presigned URLs, folders on disk)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imagegate.settings import Settings
from imagegate.storage import open_storage
from imagegate.storage.base import Storage, StorageError
from imagegate.storage.local import LocalStorage
from imagegate.storage.s3 import S3Storage
from tests.s3_server import S3Server


def s3_store(s3: S3Server, monkeypatch: pytest.MonkeyPatch, *, secret: str | None = None, **kw: str) -> S3Storage:
    """Credentials the way a deployment gives them: botocore's standard environment variables."""
    for name, value in s3.env(secret).items():
        monkeypatch.setenv(name, value)
    bucket = kw.pop("bucket", s3.bucket)
    prefix = kw.pop("prefix", f"t-{secrets.token_hex(4)}")
    public = kw.pop("public_url", s3.endpoint)
    return S3Storage(bucket, prefix, endpoint_url=s3.endpoint, region=s3.region, public_url=public or None)


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Storage]:
    st: Storage
    if request.param == "local":
        st = LocalStorage(tmp_path / "files")
    else:
        st = s3_store(request.getfixturevalue("s3_server"), monkeypatch)
    yield st
    await st.aclose()


def key(kind: str = "outputs", ext: str = "png") -> str:
    file_id = "file_" + secrets.token_hex(12)
    return f"{kind}/{file_id[5:7]}/{file_id}.{ext}"


# -- the contract, on both stores --------------------------------------------------------------


async def test_put_get_overwrite(store: Storage) -> None:
    k = key()
    await store.put(k, b"first", "image/png")
    assert await store.get(k) == b"first"
    await store.put(k, b"second, longer", "image/png")
    assert await store.get(k) == b"second, longer"


async def test_missing_is_none_and_delete_is_idempotent(store: Storage) -> None:
    k = key("inputs")
    assert await store.get(k) is None
    await store.delete(k)  # never written: not an error
    await store.put(k, b"x", "image/png")
    await store.delete(k)
    assert await store.get(k) is None
    await store.delete(k)


async def test_large_image_round_trips(store: Storage) -> None:
    data = os.urandom(9 * 2**20 + 7)  # several of SeaweedFS's 4 MB chunks, and not a round size
    k = key()
    await store.put(k, data, "image/png")
    assert await store.get(k) == data


async def test_concurrent_writes_and_reads(store: Storage) -> None:
    items = {key(): secrets.token_bytes(2000 + i) for i in range(24)}
    await asyncio.gather(*(store.put(k, v, "image/webp") for k, v in items.items()))
    got = await asyncio.gather(*(store.get(k) for k in items))
    assert got == list(items.values())


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x.png", "outputs/../../x.png", "outputs//x.png", "a/./b"])
async def test_keys_outside_the_layout_are_refused(store: Storage, bad: str) -> None:
    with pytest.raises(ValueError):
        await store.put(bad, b"x", "image/png")
    with pytest.raises(ValueError):
        await store.get(bad)


async def test_ping(store: Storage) -> None:
    await store.ping()


async def test_local_path_or_presigned_url(store: Storage) -> None:
    """Exactly one way to hand a download out: a path to stream, or a URL to redirect to."""
    k = key()
    await store.put(k, b"\x89PNG fake", "image/png")
    path = store.local_path(k)
    url = await store.presigned_url(k, expires_in=60, content_type="image/png")
    assert (path is None) != (url is None)
    if path is not None:
        assert Path(path).read_bytes() == b"\x89PNG fake"
    else:
        assert url is not None
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and got.content == b"\x89PNG fake"


# -- local disk --------------------------------------------------------------------------------


async def test_local_write_recreates_a_deleted_folder(tmp_path: Path) -> None:
    """Regression: the store used to remember which folders existed, so deleting ``outputs/`` under a
    running server made later writes into a remembered folder fail (FileNotFoundError, a 502)."""
    st = LocalStorage(tmp_path / "files")
    first, second = "outputs/ab/file_ab0000000000000000000001.png", "outputs/ab/file_ab0000000000000000000002.png"
    await st.put(first, b"1", "image/png")
    shutil.rmtree(tmp_path / "files" / "outputs")
    await st.put(second, b"2", "image/png")
    assert await st.get(second) == b"2" and await st.get(first) is None
    shutil.rmtree(tmp_path / "files")  # the whole store, readiness file included
    await st.put(first, b"again", "image/png")
    await st.ping()
    assert await st.get(first) == b"again"
    assert not list((tmp_path / "files").rglob("*.tmp"))


async def test_local_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path / "files")
    (tmp_path / "files" / "outputs").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        await st.put("outputs/ab/file_ab0000000000000000000001.png", b"x", "image/png")
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["outputs"]


# -- S3 ----------------------------------------------------------------------------------------


async def test_presigned_url_serves_the_type_then_expires(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    st = s3_store(s3_server, monkeypatch)
    try:
        k = key(ext="webp")
        await st.put(k, b"RIFF....WEBP", "image/webp")
        url = await st.presigned_url(k, expires_in=60, content_type="image/webp")
        assert url is not None and url.startswith(s3_server.endpoint) and "X-Amz-Expires=60" in url
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and got.content == b"RIFF....WEBP"
        assert got.headers["content-type"] == "image/webp"
        tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert httpx.get(tampered, timeout=10).status_code == 403
        # X-Amz-Date has whole seconds, so a 1 s URL may already be dead when first used: only check its end
        short = await st.presigned_url(k, expires_in=1, content_type="image/webp")
        assert short is not None and "X-Amz-Expires=1" in short
        time.sleep(2.5)  # past X-Amz-Date + 1 s, by the server's clock
        late = httpx.get(short, timeout=10)
        assert late.status_code == 403 and b"expired" in late.content.lower()
    finally:
        await st.aclose()


async def test_links_are_signed_for_the_public_address_or_not_at_all(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SigV4 signs the host: a link for the address clients use must be signed for that address."""
    public = s3_server.endpoint.replace("127.0.0.1", "localhost")
    st = s3_store(s3_server, monkeypatch, public_url=public)
    private = s3_store(s3_server, monkeypatch, public_url="")
    try:
        k = key()
        await st.put(k, b"\x89PNG via another name", "image/png")
        url = await st.presigned_url(k, expires_in=60, content_type="image/png")
        assert url is not None and url.startswith(public + "/")
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and got.content == b"\x89PNG via another name"
        # the same link with the host swapped back no longer matches its signature
        assert httpx.get(url.replace(public, s3_server.endpoint), timeout=10).status_code == 403
        assert await private.presigned_url(k, expires_in=60, content_type="image/png") is None
    finally:
        await st.aclose()
        await private.aclose()


async def test_wrong_secret_is_refused(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server really checks signatures: the right access key with a wrong secret gets nothing."""
    good = s3_store(s3_server, monkeypatch, prefix="signed")
    try:
        await good.put("outputs/ab/x.png", b"secret bytes", "image/png")
    finally:
        await good.aclose()
    bad = s3_store(s3_server, monkeypatch, secret="not-the-secret", prefix="signed")
    try:
        with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
            await bad.get("outputs/ab/x.png")
        with pytest.raises(StorageError, match="SignatureDoesNotMatch"):
            await bad.put("outputs/ab/y.png", b"intruder", "image/png")
        with pytest.raises(StorageError):
            await bad.ping()
        url = await bad.presigned_url("outputs/ab/x.png", expires_in=60, content_type="image/png")
        assert url is not None and httpx.get(url, timeout=10).status_code == 403
    finally:
        await bad.aclose()
    raw = s3_server.client(secret="not-the-secret")
    with pytest.raises(raw.exceptions.ClientError) as err:
        raw.get_object(Bucket=s3_server.bucket, Key="signed/outputs/ab/x.png")
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


async def test_bucket_is_created_and_keys_live_under_the_prefix(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"imagegate-new-{secrets.token_hex(3)}"
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        storage_url=f"s3://{bucket}/deep/prefix/", s3_endpoint_url=s3_server.endpoint, s3_region=s3_server.region
    )
    st = open_storage(settings)
    assert isinstance(st, S3Storage) and st.bucket == bucket and st.prefix == "deep/prefix/"
    try:
        k = key()
        await st.put(k, b"data", "image/png")
        listed = s3_server.client().list_objects_v2(Bucket=bucket)
        assert [o["Key"] for o in listed.get("Contents", [])] == [f"deep/prefix/{k}"]
        await st.aclose()  # a closed store reopens on its next use
        assert await st.get(k) == b"data"
    finally:
        await st.aclose()


async def test_an_unreachable_server_is_a_storage_error(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    from tests.s3_server import free_ports

    st = S3Storage("imagegate-test", endpoint_url=f"http://127.0.0.1:{free_ports(1)[0]}", region="us-east-1")
    try:
        with pytest.raises(StorageError, match="imagegate-test"):
            await st.put("outputs/ab/x.png", b"x", "image/png")
    finally:
        await st.aclose()


@pytest.mark.parametrize("url", ["http://bucket/x", "s3://", "s3:///prefix", "s3://b/p?x=1"])
def test_bad_storage_url_stops_start_up(url: str) -> None:
    with pytest.raises(ValueError, match="storage_url"):
        open_storage(Settings(storage_url=url))


def test_no_storage_url_is_local_disk(tmp_path: Path) -> None:
    st = open_storage(Settings(data_dir=tmp_path))
    assert isinstance(st, LocalStorage) and st.root == (tmp_path / "files").resolve()


# -- signed links ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "sig"),
    [
        (None, None),
        ("", "ab"),
        ("²", "ab"),  # a digit to str.isdigit, not to int
        ("9" * 40, "ab"),
        ("{exp}", "\u00a0" * 40),  # non-ASCII: compare_digest would raise on str
        ("{exp}", "é{sig}"),
        ("{exp}", "{sig}0"),
        ("-5", "{sig}"),
    ],
)
def test_any_query_is_an_answer_never_an_exception(expires: str | None, sig: str | None) -> None:
    from imagegate.storage.signing import UrlSigner

    signer = UrlSigner("s" * 32, ttl=60)
    exp, good = signer.sign("file_x.png")
    fill = lambda v: v if v is None else v.format(exp=exp, sig=good)  # noqa: E731
    assert signer.verify("file_x.png", fill(expires), fill(sig)) is False
    assert signer.matches("file_x.png", fill(expires), fill(sig)) is False
    assert signer.verify("file_x.png", str(exp), good) is True
    assert signer.verify("file_x.png", "1000000000", signer.mac("file_x.png", 1000000000)) is False  # expired
    assert signer.matches("file_x.png", "1000000000", signer.mac("file_x.png", 1000000000)) is True
