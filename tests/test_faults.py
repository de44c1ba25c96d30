"""Faults and safety on every stage: the database going away and coming back, a
bug in a handler, and the headers and settings that keep visitors safe.

Each test gets a stage of its own: all but the 404 page's stop the database, break a
handler, serve with options of their own, or count what was stored and listed."""

from http.cookies import SimpleCookie

import pytest
from motor.motor_tornado import MotorClient

from coursekit.clients import RawConnection, error_message, multipart
from coursekit.database import embedded_db
from coursekit.images import image_bytes
from coursekit.processes import free_port
from coursekit.stages import ORIGINAL_PATHS, STAGES
from coursekit.waiting import eventually

RUNS_ON = STAGES  # every stage


@pytest.mark.takes(8)
async def test_503_while_the_database_is_down_and_recovery_when_it_is_back(serve, tmp_path, caplog):
    port, storage = free_port(), tmp_path / "db"
    # As main() does: operations give up after a short wait instead of hanging.
    db = MotorClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=1000).faults
    client = await serve(db=db, visit=False)
    with embedded_db(port, storage):
        assert (await client.upload(image_bytes(), "before.png")).code == 302
        [(image_path, _)] = await client.listed()

    # The database has stopped.
    caplog.clear()
    for response in [await client.fetch("/"), await client.fetch(image_path),
                     await client.upload(image_bytes(), "during.png")]:
        assert response.code == 503
        assert "database" in error_message(response.body.decode())
        assert "Traceback" not in response.body.decode()
    # In the log, a line for each request, not a traceback: every visitor meets it.
    tracebacks = [record.getMessage() for record in caplog.records if record.exc_info]
    assert not tracebacks, f"a database that is down logged tracebacks: {tracebacks}"
    said = [record.getMessage() for record in caplog.records if "database" in record.getMessage()]
    assert len(said) >= 3, f"three requests met a database that is down, and the log said: {said}"

    with embedded_db(port, storage):  # back, with the same files
        assert [name for _, name in await client.listed()] == ["before.png"]
        assert (await client.fetch(image_path)).code == 200
    db.client.close()


async def test_a_bug_gives_a_500_page_without_a_traceback(stage_code, client, monkeypatch):
    async def broken(self):
        raise RuntimeError("a detail for the log, not for visitors")

    home = getattr(stage_code, "HomeHandler", None) or stage_code.MainHandler  # GET /: HomeHandler from part 3
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
    # The client has the XSRF cookie, where there is one: a POST checks it first.
    for method, body in [("GET", None), ("POST", b"")]:
        response = await client.fetch("/no/such/page", method, body)
        assert response.code == 404
        assert error_message(response.body.decode()) == "There is no page here."


@pytest.mark.runs_on(*[stage for stage in STAGES if stage != "part1_basic"])  # XSRF from part 2
async def test_the_xsrf_cookie_is_samesite_lax_and_secure_under_https(serve):
    # xheaders: a proxy in front terminates HTTPS and says so, as in part 4.
    client = await serve(visit=False, server_options={"xheaders": True})
    for headers, secure in [({}, ""), ({"X-Forwarded-Proto": "https"}, True)]:
        client.cookies.clear()  # a new visitor: the cookie is set
        response = await client.fetch("/", headers=headers)
        cookie = SimpleCookie(response.headers["Set-Cookie"])["_xsrf"]
        assert cookie["samesite"] == "Lax"
        assert cookie["secure"] == secure


def test_debug_is_off_unless_asked(stage_app, db):
    settings = stage_app.make_app(db).settings
    assert not settings.get("debug") and not settings.get("serve_traceback")


async def test_clients_that_disconnect_mid_upload_or_mid_download_leave_nothing(client):
    await client.upload(image_bytes(size=(900, 700)), "kept.png")  # the one file there should be
    [(image_path, _)] = await client.listed()
    before = await client.stored()
    body, form_type = multipart({"file": ("gone.png", image_bytes(size=(900, 700)), "image/png")})
    async with RawConnection(client) as connection:  # half a body, then gone
        await connection.send_headers("POST", client.form_action,
                                      [f"Content-Type: {form_type}", f"Content-Length: {len(body)}"])
        await connection.send(body[: len(body) // 2])
    async with RawConnection(client) as connection:  # the start of a download, then gone
        await connection.send_headers("GET", image_path)
        await connection.reader.readexactly(100)

    # The server notices when it next reads or writes: wait for it, within bounds.
    async def nothing_left():
        return await client.stored() == before and (await client.fetch("/")).code == 200

    await eventually(nothing_left, timeout=5)
    assert await client.stored() == before
    assert [name for _, name in await client.listed()] == ["kept.png"]
