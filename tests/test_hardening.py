"""No input can hurt the server: pixel bombs, deep JSON, address ranges, DNS rebinding, echoed values.

Server tests share one module-scoped ``imagegate serve`` (private networks allowed, so the
bomb can also come from a loopback URL); the rest are unit tests on the policy and the body reader.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from imagegate.api import body as body_mod
from imagegate.domain import GatewayError, ImageInput
from imagegate.media import codecs, fetch, network
from imagegate.media.network import NetworkPolicy, blocked, check_url
from imagegate.media.pool import DecodePool, PixelBudget
from tests.conftest import ServerProc
from tests.hardening_support import RecordingHost, memory_kb, zero_png

MB = 1024  # kB
PUBLIC = "93.184.216.34"


# -- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zero_png(10_000, 10_000)  # ~390 KB that decode to 400 MB


@pytest.fixture(scope="module")
def bomb_host(bomb: bytes) -> Iterator[RecordingHost]:
    host = RecordingHost({"/bomb.png": bomb})
    yield host
    host.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    srv = ServerProc(tmp_path_factory.mktemp("hardening"), env={"IMAGEGATE_ALLOW_PRIVATE_NETWORKS": "1"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(gw: ServerProc) -> str:
    return gw.create_key()


def post(gw: ServerProc, key: str, path: str = "/v1/images/generations", **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.post(gw.url + path, headers=headers, timeout=60, **kw)


def error(resp: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = resp.json()["error"]
    return err


def test_pixel_bomb_is_refused_from_its_header(gw: ServerProc, key: str, bomb: bytes, bomb_host: RecordingHost) -> None:
    assert gw.proc is not None
    rss_before, peak_before = memory_kb(gw.proc.pid)
    b64 = base64.b64encode(bomb).decode()
    sends = [
        {"data": {"model": "test/test", "prompt": "x"}, "files": {"image": ("bomb.png", bomb, "image/png")}},
        {"json": {"model": "test/test", "prompt": "x", "image": "data:image/png;base64," + b64}},
        {"json": {"model": "test/test", "prompt": "x", "image": b64}},
        {"json": {"model": "test/test", "prompt": "x", "image": bomb_host.url + "/bomb.png"}},
    ]
    with ThreadPoolExecutor(6) as pool:  # each way once, then three at once
        answers = list(pool.map(lambda kw: post(gw, key, "/v1/images/edits", **kw), sends))
        answers += list(pool.map(lambda kw: post(gw, key, "/v1/images/edits", **kw), [sends[0]] * 3))
    for r in answers:
        assert r.status_code == 400, r.text
        assert error(r)["param"] == "image" and "40,000,000 pixels" in error(r)["message"], r.text
    assert bomb_host.hits, "the URL form was fetched"
    rss_after, peak_after = memory_kb(gw.proc.pid)
    # the old code decoded each: +1.5 GB for one, 4.7 GB peak for three at once
    assert peak_after - max(peak_before, rss_before) < 200 * MB, (rss_before, peak_before, rss_after, peak_after)
    assert rss_after - rss_before < 200 * MB


def test_deep_json_is_a_400_and_the_connection_lives_on(gw: ServerProc, key: str) -> None:
    deep = b'{"model": "test/test", "prompt": "x", "style": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key}"}, timeout=60) as client:
        r = client.post("/v1/images/generations", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 400 and error(r)["param"] == "body", r.text
        assert "32 levels" in error(r)["message"]
        first = r.extensions["network_stream"].get_extra_info("client_addr")
        r = client.post("/v1/images/generations", json={"model": "test/test", "prompt": "x", "size": "256x256"})
        assert r.status_code == 200, r.text
        assert r.extensions["network_stream"].get_extra_info("client_addr") == first  # same kept-alive connection


def test_callback_url_message_is_about_callbacks(gw: ServerProc, key: str) -> None:
    r = post(gw, key, json={"model": "test/test", "prompt": "x", "callback_url": "ftp://x"})
    assert r.status_code == 400 and error(r)["param"] == "callback_url"
    message = error(r)["message"]
    assert "http(s) URL" in message and "image" not in message and "base64" not in message, message


def test_prefer_wait_that_is_no_number_is_refused(gw: ServerProc, key: str) -> None:
    body = {"model": "test/test", "prompt": "x"}
    r = post(gw, key, "/v1/images/generations?async=true", headers={"prefer": "wait=soon"}, json=body)
    assert r.status_code == 400 and error(r)["param"] == "Prefer", r.text


def test_long_model_name_is_cut_in_the_message(gw: ServerProc, key: str) -> None:
    r = post(gw, key, json={"model": "m" * 100_000, "prompt": "x"})
    assert r.status_code == 404 and error(r)["param"] == "model"
    assert len(error(r)["message"]) < 300


# -- pixel limits --------------------------------------------------------------------------------


def test_probe_refuses_more_pixels_than_the_limit_before_decoding() -> None:
    big = zero_png(8000, 8000, "L")  # exactly Pillow's old MAX_IMAGE_PIXELS here: accepted before
    with pytest.raises(GatewayError) as exc:
        codecs.probe(big, "image[1]")
    assert exc.value.param == "image[1]" and "40,000,000 pixels" in exc.value.message
    small = zero_png(100, 100)
    assert codecs.probe(small, "image", max_pixels=10_000).width == 100  # the limit itself is allowed
    with pytest.raises(GatewayError, match=r"9,999 pixels allowed per input image \(100x100 is 10,000\)"):
        codecs.probe(small, "image", max_pixels=9_999)


def test_checked_uses_the_policy_limit() -> None:
    policy = NetworkPolicy(max_pixels=5_000)
    with pytest.raises(GatewayError, match="5,000 pixels"):
        fetch.checked(zero_png(100, 100), "mask", policy, "upload")


def test_request_pixel_budget_names_the_image_that_went_over() -> None:
    img = ImageInput(data=b"", mime="image/png", width=1000, height=1000, source="upload")
    policy = NetworkPolicy(max_request_pixels=2_500_000)
    fetch.check_request_pixels([("image", img), ("image", img)], policy)
    with pytest.raises(GatewayError) as exc:
        fetch.check_request_pixels([("image", img), ("image", img), ("mask", img)], policy)
    assert exc.value.param == "mask" and "2,500,000" in exc.value.message


# -- the decode pool -----------------------------------------------------------------------------


def test_pixel_budget_bounds_what_decodes_at_once() -> None:
    budget, lock, state = PixelBudget(100), threading.Lock(), {"now": 0, "peak": 0}

    def job(pixels: int) -> None:
        with budget.hold(pixels):
            with lock:
                state["now"] += budget.share(pixels)
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.01)
            with lock:
                state["now"] -= budget.share(pixels)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(job, [60, 60, 60, 1000, 30, 60, 10]))
    assert state["peak"] <= 100 and budget.in_use == 0


def test_pixel_budget_lets_small_decodes_share_and_nests_free() -> None:
    budget, barrier = PixelBudget(100), threading.Barrier(4, timeout=10)

    def small() -> None:
        with budget.hold(25):
            barrier.wait()  # all four inside at once, or BrokenBarrierError

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(small) for _ in range(4)]:
            f.result()
    with budget.hold(100), budget.hold(100):  # a helper that holds, called by one that holds
        assert budget.in_use == 100
    assert budget.in_use == 0


def test_pixel_budget_serves_in_arrival_order() -> None:
    budget, order = PixelBudget(100), []
    first = budget.hold(60)
    first.__enter__()

    def want(name: str, pixels: int) -> None:
        with budget.hold(pixels):
            order.append(name)

    big = threading.Thread(target=want, args=("big", 60))
    big.start()
    while budget.waiting < 1:
        time.sleep(0.001)
    small = threading.Thread(target=want, args=("small", 10))  # fits now, but arrived after the big one
    small.start()
    while budget.waiting < 2:
        time.sleep(0.001)
    assert order == []
    first.__exit__(None, None, None)
    big.join(10)
    small.join(10)
    assert order == ["big", "small"]


async def test_decode_pool_runs_off_the_loop_under_the_budget() -> None:
    pool, running, peak = DecodePool(workers=4, budget=100), [0], [0]

    def job(i: int) -> int:
        running[0] += 60
        peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        running[0] -= 60
        return i * 2

    try:
        assert await asyncio.gather(*(pool.run(60, job, i) for i in range(5))) == [0, 2, 4, 6, 8]
    finally:
        pool.shutdown()
    assert peak[0] == 60


async def test_convert_async_round_trip() -> None:
    jpeg = await codecs.convert_async(zero_png(64, 48, "RGB"), "jpeg")
    assert codecs.size_of(jpeg) == (64, 48) and codecs.sniff_format(jpeg) == "jpeg"


# -- the address policy --------------------------------------------------------------------------

REFUSED = [
    "100.64.0.1", "100.127.255.254",  # carrier-grade NAT
    "10.1.2.3", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.168.1.1", "0.0.0.0", "192.0.0.9",
    "198.18.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "fec0::1", "fec0:1:2:3::4",  # site-local
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.64.0.1",  # v4-mapped
    "2002:7f00:1::1", "2002:a00:1::", "2002:c0a8:101::1", "2002:6440:1::1",  # 6to4 of 127/10/192.168/100.64
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo to 127.0.0.1, 10.0.0.1
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "::7f00:1",  # NAT64 and v4-compatible forms
]  # fmt: skip
ALLOWED = ["8.8.8.8", PUBLIC, "2606:4700:4700::1111", "2002:808:808::1"]  # the last: 6to4 of 8.8.8.8


@pytest.mark.parametrize("address", REFUSED)
def test_address_refused(address: str) -> None:
    import ipaddress

    assert blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_address_allowed(address: str) -> None:
    import ipaddress

    assert not blocked(ipaddress.ip_address(address))


def stub(answers: dict[str, list[str]]) -> network.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    ["http://100.64.0.1/x.png", "http://[2002:7f00:1::1]/x.png", "http://[fec0::1]/", "http://[::ffff:7f00:1]:8/"],
)
async def test_literal_urls_refused(url: str) -> None:
    with pytest.raises(GatewayError, match="private or local") as exc:
        await check_url(url, NetworkPolicy(resolver=stub({})), "image")
    assert exc.value.param == "image" and exc.value.status == 400


@pytest.mark.parametrize(
    "answer",
    [["100.64.1.2"], [PUBLIC, "10.0.0.1"], ["2002:7f00:1::1"], ["::ffff:127.0.0.1"], ["fe80::1%eth0"], ["fec0::9"], []],
)
async def test_names_refused_by_what_they_resolve_to(answer: list[str]) -> None:
    policy = NetworkPolicy(resolver=stub({"img.example": answer}))
    with pytest.raises(GatewayError) as exc:
        await check_url("https://img.example/a.png", policy, "image")
    assert exc.value.param == "image"


async def test_numeric_host_forms_are_judged_by_their_address() -> None:
    with pytest.raises(GatewayError, match="private or local"):
        await check_url("http://2130706433/x.png", NetworkPolicy(), "image")  # inet_aton: 127.0.0.1


async def test_check_url_pins_the_address_it_approved() -> None:
    policy = NetworkPolicy(resolver=stub({"img.example": [PUBLIC, "2606:4700:4700::1111"]}))
    target = await check_url("https://img.example:8443/a.png?x=1", policy, "image")
    req = target.build(httpx.AsyncClient(), "GET", headers={"x-test": "1"})
    assert req.url.host == PUBLIC and req.url.port == 8443 and req.url.path == "/a.png"
    assert req.headers["host"] == "img.example:8443" and req.headers["x-test"] == "1"
    assert req.extensions["sni_hostname"] == "img.example"


async def test_messages_fit_the_parameter_and_cut_long_values() -> None:
    with pytest.raises(GatewayError) as exc:
        await check_url("ftp://x", NetworkPolicy(), "callback_url")
    assert exc.value.message == "'callback_url' must be an http(s) URL"
    host = ("a" * 60 + ".") * 500 + "example"  # 30 KB: httpx takes URLs up to 64 KB
    with pytest.raises(GatewayError) as exc:
        await check_url(f"http://{host}/", NetworkPolicy(resolver=stub({})), "image")
    assert "cannot be resolved" in exc.value.message and len(exc.value.message) < 200


# -- DNS rebinding -------------------------------------------------------------------------------


def rebinding(first: str, then: str) -> tuple[network.Resolver, list[str]]:
    """A resolver that answers ``first`` once, then ``then``: what a rebinding DNS server does."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return [first if len(asked) == 1 else then]

    return resolve, asked


async def test_the_connection_goes_to_the_checked_address_on_every_hop() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        if len(seen) == 1:
            return httpx.Response(302, headers={"location": "http://cdn.example/b.png"})
        return httpx.Response(200, content=b"img")

    resolve, asked = rebinding(PUBLIC, "8.8.4.4")
    policy = NetworkPolicy(resolver=resolve)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await fetch.fetch_url(client, "https://rebind.example/a.png", policy, "image") == b"img"
    assert asked == ["rebind.example", "cdn.example"]  # one resolution per hop, each checked
    assert seen == [(PUBLIC, "rebind.example", "rebind.example"), ("8.8.4.4", "cdn.example", None)]


async def test_redirect_to_a_private_name_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://inside.example/secret"})

    policy = NetworkPolicy(resolver=stub({"out.example": [PUBLIC], "inside.example": ["10.0.0.5"]}))
    # a client that follows redirects by itself must not follow them past the checks
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as client:
        with pytest.raises(GatewayError, match="private or local"):
            await fetch.fetch_url(client, "http://out.example/a.png", policy, "image")


async def test_dns_rebinding_cannot_reach_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``localhost`` answers the check with an address the policy calls public (127.0.0.2, for this test);
    a client that resolved again would reach the victim on 127.0.0.1. The pinned one reaches the decoy."""
    victim = RecordingHost({"/x.png": b"secret"})
    decoy = RecordingHost({"/x.png": b"decoy"}, address="127.0.0.2", port=victim.port)
    real_blocked = network.blocked
    monkeypatch.setattr(network, "blocked", lambda ip: str(ip) != "127.0.0.2" and real_blocked(ip))
    resolve, _ = rebinding("127.0.0.2", "127.0.0.1")
    try:
        async with httpx.AsyncClient() as client:
            got = await fetch.fetch_url(
                client, f"http://localhost:{victim.port}/x.png", NetworkPolicy(resolver=resolve, timeout=5), "image"
            )
    finally:
        victim.close()
        decoy.close()
    assert victim.hits == []
    assert got == b"decoy" and decoy.hits == [("/x.png", f"localhost:{victim.port}")]


# -- the body reader -----------------------------------------------------------------------------


def asgi_request(headers: dict[str, str], chunks: Iterable[bytes]) -> tuple[Request, list[int]]:
    """A request whose body arrives in ``chunks``; the list records what the server pulled in."""
    pulled: list[int] = []
    it = iter(chunks)

    async def receive() -> dict[str, Any]:
        chunk = next(it, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": True}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_headers, "query_string": b""}
    return Request(scope, receive), pulled


PART = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'


@pytest.mark.parametrize("ctype,head", [("application/json", b'{"a": "'), ("multipart/form-data; boundary=xyz", PART)])
async def test_a_chunked_body_stops_at_the_limit(ctype: str, head: bytes) -> None:
    """No Content-Length: the old reader took all 50 MB in before it looked at the size."""
    chunks = itertools.chain([head], (b"x" * 2**20 for _ in range(50)))
    request, pulled = asgi_request({"content-type": ctype}, chunks)
    with pytest.raises(GatewayError) as exc:
        await body_mod.read_body(request, 3 * 2**20)
    assert exc.value.status == 413 and len(pulled) <= 4


def test_json_depth_and_size_of_shape() -> None:
    nest = lambda n: b'{"a": ' + b"[" * (n - 1) + b"]" * (n - 1) + b"}"  # noqa: E731
    body_mod.parse_json(nest(32))
    with pytest.raises(GatewayError, match="deeper than 32") as exc:
        body_mod.parse_json(nest(33))
    assert exc.value.param == "body"
    tricky = b'{"p": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\" [[[[[ \\\\", "q": ["{{{{"]}'
    assert body_mod.parse_json(tricky, max_depth=2) == {
        "p": '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ " [[[[[ \\',
        "q": ["{{{{"],
    }
    with pytest.raises(GatewayError, match="1,000 JSON values"):
        body_mod.parse_json(b"[" + b"[]," * 1000 + b"[]]", max_values=1000)
    with pytest.raises(GatewayError, match="1,000 JSON values"):
        body_mod.parse_json(b"[" + b'"",' * 5000 + b'""]', max_values=1000)


async def test_form_limits_hold_and_say_which() -> None:
    files = [("image", (f"{i}.png", b"x", "image/png")) for i in range(body_mod.MAX_FORM_FILES + 1)]
    built = httpx.Request("POST", "http://x/", files=files, data={"model": "m"})
    request, _ = asgi_request(dict(built.headers), [built.read()])
    with pytest.raises(GatewayError, match="Too many files") as exc:
        await body_mod.read_body(request, 2**30)
    assert exc.value.param == "body"


@pytest.mark.parametrize(
    "header,expected",
    [("wait=5", 5.0), ("respond-async, wait=2.5", 2.5), ("wait", 60.0), ("wait=1e308", 60.0), ("wait=99999", 60.0)],
)
def test_prefer_wait_is_clamped(header: str, expected: float) -> None:
    request, _ = asgi_request({"prefer": header}, [])
    assert body_mod.prefer_wait(request) == expected


@pytest.mark.parametrize("header", ["wait=nan", "wait=-1", "wait=soon", "wait=" + "9" * 5000 + "x"])
def test_prefer_wait_nonsense_is_a_400(header: str) -> None:
    request, _ = asgi_request({"prefer": header}, [])
    with pytest.raises(GatewayError) as exc:
        body_mod.prefer_wait(request)
    assert exc.value.param == "Prefer" and len(exc.value.message) < 200


def test_request_bytes_held_at_once_are_capped(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Bodies still being received count against the process-wide cap: past it, a request is a 503 with
    Retry-After before its body is read; once they are answered, the same request goes through."""
    import socket

    srv = ServerProc(tmp_path_factory.mktemp("inflight"), env={"IMAGEGATE_MAX_BYTES_IN_FLIGHT": "3000000"}).start()
    try:
        key = srv.create_key()
        host, port = srv.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        head = (
            f"POST /v1/images/generations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
        )
        slow.sendall(head.encode() + b'{"prompt": "')  # the rest of its 2 MB never comes (yet)
        big = {"model": "test/test", "prompt": "x" * 1_500_000, "size": "64x64"}
        auth = {"authorization": f"Bearer {key}"}
        r = httpx.post(srv.url + "/v1/images/generations", json=big, headers=auth, timeout=30)
        for _ in range(300):  # the slow request is let in once the server has read its head (30 s on a busy box)
            if r.status_code == 503:
                break
            time.sleep(0.1)
            r = httpx.post(srv.url + "/v1/images/generations", json=big, headers=auth, timeout=30)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["param"] == "body" and err["code"] == "server_overloaded" and r.headers["retry-after"] == "1"
        small = httpx.post(srv.url + "/v1/images/generations", json={**big, "prompt": "small"}, headers=auth)
        assert small.status_code == 200, small.text  # what fits under the cap still runs
        slow.close()  # its request ends: the bytes it held are released
        for _ in range(300):
            r = httpx.post(srv.url + "/v1/images/generations", json=big, headers=auth, timeout=30)
            if r.status_code != 503:
                break
            time.sleep(0.1)
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text  # read and judged again
    finally:
        srv.stop()
