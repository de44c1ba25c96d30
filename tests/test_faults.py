"""Faults and safety on every stage: the database going away and coming back, a
bug in a handler, and the headers and settings that keep visitors safe."""

import asyncio
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from motor.motor_tornado import MotorClient
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from coursekit.stages import FORM_PATHS
from support import (ORIGINAL_PATHS, STAGES, Client, course, error_message, free_port, image_bytes, load_stage,
                     multipart, served)

RUNS_ON = STAGES  # every stage


async def test_503_while_the_database_is_down_and_recovery_when_it_is_back(stage, tmp_path):
    port, storage = free_port(), tmp_path / "db"
    # As main() does: operations give up after a short wait instead of hanging.
    db = MotorClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=1000).faults
    async with served(load_stage(stage).make_app(db)) as base_url:
        client = Client(base_url, db)
        with course.embedded_db(port, storage):
            assert (await client.upload(image_bytes(), "before.png")).code == 302
            [(image_path, _)] = await client.listed()

        # The database has stopped.
        for response in [await client.fetch("/"), await client.fetch(image_path),
                         await client.upload(image_bytes(), "during.png")]:
            assert response.code == 503
            assert "database" in error_message(response.body.decode())
            assert "Traceback" not in response.body.decode()

        with course.embedded_db(port, storage):  # back, with the same files
            assert [name for _, name in await client.listed()] == ["before.png"]
            assert (await client.fetch(image_path)).code == 200
    db.client.close()


async def test_a_bug_gives_a_500_page_without_a_traceback(stage, client, monkeypatch):
    async def broken(self):
        raise RuntimeError("a detail for the log, not for visitors")

    module = load_stage(stage)
    home = getattr(module, "HomeHandler", None) or module.MainHandler  # GET /'s handler: HomeHandler from part 3
    monkeypatch.setattr(home, "get", broken)
    response = await client.fetch("/")
    assert response.code == 500
    page = response.body.decode()
    assert error_message(page) == "Internal Server Error"
    assert "detail for the log" not in page and "Traceback" not in page


async def test_every_response_carries_the_safety_headers(client, stage):
    await client.upload(image_bytes())
    [(image_path, _)] = await client.listed()
    for path in ["/", image_path, ORIGINAL_PATHS[stage].format("not-an-id"), "/no/such/page"]:
        response = await client.fetch(path)
        assert "script-src" not in response.headers["Content-Security-Policy"]  # so default-src 'self'
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self';")
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_url_no_route_matches_gets_the_sites_404_page(client):
    await client.fetch("/")  # the XSRF cookie, where there is one: a POST checks it first
    for method, body in [("GET", None), ("POST", b"")]:
        response = await client.fetch("/no/such/page", method, body)
        assert response.code == 404
        assert error_message(response.body.decode()) == "There is no page here."


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage != "part1_basic"])  # XSRF from part 2
async def test_the_xsrf_cookie_is_samesite_lax_and_secure_under_https(stage, db):
    # xheaders: a proxy in front terminates HTTPS and says so, as in part 4.
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(load_stage(stage).make_app(db), xheaders=True)
    server.add_sockets([sock])
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    try:
        for headers, secure in [({}, ""), ({"X-Forwarded-Proto": "https"}, True)]:
            response = await AsyncHTTPClient().fetch(url, headers=headers)
            cookie = SimpleCookie(response.headers["Set-Cookie"])["_xsrf"]
            assert cookie["samesite"] == "Lax"
            assert cookie["secure"] == secure
    finally:
        server.stop()
        await server.close_all_connections()


def test_debug_is_off_unless_asked(stage, db):
    settings = load_stage(stage).make_app(db).settings
    assert not settings.get("debug") and not settings.get("serve_traceback")


async def test_clients_that_disconnect_mid_upload_or_mid_download_leave_nothing(client, stage):
    await client.upload(image_bytes(size=(900, 700)), "kept.png")  # the one file there should be
    [(image_path, _)] = await client.listed()
    before = await client.stored()
    body, form_type = multipart({"file": ("gone.png", image_bytes(size=(900, 700)), "image/png")})
    token = client.cookies.get("_xsrf", "")
    address = urlsplit(client.base_url)
    for request in [
        # half a body, then gone
        (f"POST {FORM_PATHS[stage]} HTTP/1.1\r\nHost: x\r\nContent-Type: {form_type}\r\nContent-Length: {len(body)}\r\n"
         f"Cookie: _xsrf={token}\r\nX-XSRFToken: {token}\r\n\r\n").encode() + body[: len(body) // 2],
        # the start of a download, then gone
        f"GET {image_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    ]:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        writer.write(request)
        await writer.drain()
        if request.startswith(b"GET"):
            await reader.readexactly(100)
        writer.close()
    # The server notices when it next reads or writes: wait for it, within bounds.
    for _ in range(50):
        if await client.stored() == before and (await client.fetch("/")).code == 200:
            break
        await asyncio.sleep(0.1)
    assert await client.stored() == before
    assert [name for _, name in await client.listed()] == ["kept.png"]
