"""What part 3 adds to uploads: any file, streamed into GridFS as it arrives, through
the form or by PUT; refused when too big or malformed, before it is all sent; gone
without a trace when its client goes; read no faster than the database stores it;
and the XSRF token sent where a streamed body still lets it be checked.

Everything goes over real HTTP to a real database. Where a client must misbehave
(stop halfway, lie, send a chunked body) the test speaks HTTP on a raw connection.
Each test gets a stage and a database of its own: it uploads, or tries to, and most
count what was stored; some set a limit of their own."""

import asyncio
import hashlib
import json
import logging
import os
import re
from urllib.parse import quote

import pytest
from bson import ObjectId
from gridfs import DEFAULT_CHUNK_SIZE as CHUNK
from motor.motor_tornado import MotorClient

from coursekit.clients import RawConnection, error_message, multipart
from coursekit.database import embedded_db
from coursekit.processes import free_port
from coursekit.stages import FORM_PATHS, ORIGINAL_PATHS
from coursekit.waiting import eventually, steady

RUNS_ON = ["part3_streaming", "part4_production", "part5_live"]  # parts 4 and 5 run the same code for real


async def nothing_stored(client):
    return await client.stored() == client.nothing_stored


# --- Round trips ---

SIZES = [1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK + 7, 10**7, 64 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("way", ["form", "put"])
async def test_any_file_round_trips_identical_through_both_ways_in(client, way, size):
    data = os.urandom(size)
    if way == "form":
        response = await client.upload(data, "random.bin", "application/octet-stream")
        assert response.code == 302
    else:
        response = await client.put(data, "random.bin")
        assert response.code == 201
    [(href, name)] = await client.listed()
    assert name == "random.bin"
    assert await client.digest(href) == (200, hashlib.sha256(data).hexdigest())
    files = await client.db.fs.files.find().to_list(None)
    assert [(file["length"], file["chunkSize"]) for file in files] == [(size, CHUNK)]
    assert await client.db.fs.chunks.count_documents({}) == -(-size // CHUNK)


async def test_put_answers_201_with_the_location_and_the_id(client, stage):
    response = await client.put(b"hello", "hello.txt")
    assert response.code == 201
    upload_id = json.loads(response.body)["id"]
    assert response.headers["Location"] == ORIGINAL_PATHS[stage].format(upload_id)
    assert response.headers["Content-Type"].startswith("application/json")
    document = await client.db.uploads.find_one({"_id": ObjectId(upload_id)})
    assert (document["filename"], document["contentType"], document["length"]) == ("hello.txt", "text/plain", 5)
    assert (await client.fetch(response.headers["Location"])).body == b"hello"


@pytest.mark.parametrize("way", ["form", "put"])
async def test_an_empty_file_is_refused_both_ways_and_nothing_stored(client, way):
    response = await (client.upload(b"", "empty.bin") if way == "form" else client.put(b"", "empty.bin"))
    assert response.code == 400
    assert "empty" in error_message(response.body.decode())
    assert await client.stored() == client.nothing_stored


async def test_only_the_first_file_of_a_form_is_stored(client):
    body, form_type = multipart([("note", b"not me"),
                                 ("file", ("first.txt", b"first", "application/octet-stream")),
                                 ("file", ("second.txt", b"second", "application/octet-stream"))])
    response = await client.fetch(client.form_action, "POST", body, {"Content-Type": form_type})
    assert response.code == 302
    [(href, name)] = await client.listed()
    assert name == "first.txt"
    assert (await client.fetch(href)).body == b"first"


@pytest.mark.parametrize("body", [
    b"this is no multipart form",
    b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\nhalf a file",
    b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
    + os.urandom(300_000) + b"\r\nno header line has no colon\r\n\r\n--BOUNDARY--\r\n",
], ids=["garbage", "truncated", "broken mid-way"])
async def test_a_malformed_form_is_refused_and_nothing_stored(client, body):
    response = await client.fetch(client.form_action, "POST", body,
                                  {"Content-Type": "multipart/form-data; boundary=BOUNDARY"})
    assert response.code == 400
    assert "malformed" in error_message(response.body.decode())
    assert await eventually(lambda: nothing_stored(client))


async def test_a_post_that_is_not_a_form_is_refused(client):
    response = await client.fetch(client.form_action, "POST", b"{}", {"Content-Type": "application/json"})
    assert response.code == 400
    assert "multipart/form-data" in error_message(response.body.decode())
    assert await client.stored() == client.nothing_stored


async def test_the_home_page_takes_no_upload(client):
    """Uploads have handlers of their own: a form posted to the home page is no upload."""
    body, form_type = multipart({"file": ("misplaced.txt", b"not here", "application/octet-stream")})
    response = await client.fetch("/", "POST", body, {"Content-Type": form_type})
    assert response.code == 405
    assert await client.stored() == client.nothing_stored


# --- Too big ---


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_declared_size_over_the_limit_gets_413_before_any_byte_is_sent(serve, way):
    client = await serve(max_upload_size=1000)
    async with RawConnection(client) as connection:
        # Headers only, and a size of 5 GB: the answer comes without the body.
        await connection.send_headers(*(("POST", client.form_action) if way == "form" else ("PUT", "/upload/big.bin")),
                                      ["Content-Length: 5000000000", "Content-Type: multipart/form-data; boundary=B"])
        status, _, body = await connection.response()
    assert status == 413
    assert error_message(body.decode()) == "That file is too big: the limit is 1000 bytes."
    assert await client.stored() == client.nothing_stored


async def test_the_limit_is_the_files_the_same_through_the_form_and_put(serve):
    client = await serve(max_upload_size=1000)
    assert (await client.put(os.urandom(1000))).code == 201
    assert (await client.upload(os.urandom(1000), "at-the-limit.bin", "application/octet-stream")).code == 302
    for response in [await client.put(os.urandom(1001)),
                     await client.upload(os.urandom(1001), "over.bin", "application/octet-stream")]:
        assert response.code == 413
        assert error_message(response.body.decode()) == "That file is too big: the limit is 1000 bytes."
    assert await client.db.uploads.count_documents({}) == 2
    assert await client.db.fs.files.count_documents({}) == 2


async def test_a_body_growing_past_the_limit_is_cut_off_and_its_chunks_deleted(serve):
    limit = 3 * CHUNK  # enough for chunks to be stored before the limit is reached
    client = await serve(max_upload_size=limit)
    async with RawConnection(client) as connection:
        # Chunked: the size is not known in advance, so it can only be counted.
        await connection.send_headers("PUT", "/upload/growing.bin", ["Transfer-Encoding: chunked"])
        piece = os.urandom(64 * 1024)
        for _ in range(3 * CHUNK // len(piece)):
            await connection.send(b"%x\r\n%b\r\n" % (len(piece), piece))
        await eventually(lambda: client.db.fs.chunks.count_documents({}))  # some were stored
        await connection.send(b"%x\r\n" % len(piece))  # a chunk that would pass the limit
        status, _, _ = await connection.response()
    assert status == 400  # Tornado's own answer: it stops reading, and closes
    assert await eventually(lambda: nothing_stored(client))


# --- Disconnects, and a database that fails ---


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_client_gone_mid_upload_leaves_no_file_and_no_chunks(client, stage_code, way, caplog):
    caplog.set_level(logging.INFO, logger=stage_code.log.name)
    size = 10 * 1024 * 1024
    async with RawConnection(client) as connection:
        if way == "form":
            head = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="gone.bin"\r\n'
                    b"Content-Type: application/octet-stream\r\n\r\n")
            await connection.send_headers("POST", client.form_action, [f"Content-Length: {len(head) + size + 7}",
                                                                       "Content-Type: multipart/form-data; boundary=B"])
            await connection.send(head)
        else:
            await connection.send_headers("PUT", "/upload/gone.bin", [f"Content-Length: {size}"])
        for _ in range(8):
            await connection.send(os.urandom(64 * 1024))
        await eventually(lambda: client.db.fs.chunks.count_documents({}))  # the upload was under way
    # The connection is closed: what was stored goes.
    assert await eventually(lambda: nothing_stored(client))
    assert "client gone after" in caplog.text


async def test_the_database_failing_mid_upload_gets_503(serve, start_upload, tmp_path, caplog):
    port = free_port()
    db = MotorClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=1000).faults
    client = await serve(db=db, visit=False)
    with embedded_db(port, tmp_path / "db"):
        await client.visit()  # the XSRF cookie
        upload = await start_upload(client, "big.bin", 10_000_000, os.urandom(3 * CHUNK))
        await eventually(lambda: db.fs.chunks.count_documents({}))
        # Stopped with no insert under way: one failing then would answer 503 while the
        # chunk below is still being sent, and the reset could lose the answer.
        await steady(lambda: db.fs.chunks.count_documents({}))
    # The database has stopped, with chunks of the upload in it. Two chunks more: the
    # first one's insert fails while the second arrives, and is awaited once the second
    # is all in; all of it is read before the failure is answered (bytes left unread
    # when the server closes would reset the connection, and the answer could be lost).
    await upload.send(os.urandom(2 * CHUNK))
    status, _, body = await upload.response()
    assert status == 503
    assert "database failed" in error_message(body.decode())
    assert "Traceback" not in body.decode()
    assert "left behind" in caplog.text  # what could not be deleted is said
    db.client.close()


# --- Backpressure: the body is read as fast as the database takes it, no faster ---


async def test_no_more_of_an_upload_is_read_while_a_chunk_insert_is_pending(proxied, serve, start_upload, db):
    proxy, through_proxy = proxied()
    client = await serve(db=through_proxy)
    data = os.urandom(64 * 1024 * 1024)
    upload = await start_upload(client, "held.bin", len(data))
    sent = 0

    async def send_the_body():
        nonlocal sent
        for start in range(0, len(data), 64 * 1024):
            await upload.send(data[start : start + 64 * 1024])  # returns once the socket has taken it
            sent = min(start + 64 * 1024, len(data))

    sending = asyncio.ensure_future(send_the_body())
    try:
        await eventually(lambda: db.fs.chunks.count_documents({}))  # under way: chunks are stored
        proxy.pause()  # from now on, the database answers nothing: the next insert hangs
        held_at = await steady(lambda: sent)  # the client can send no more
        assert proxy.held, "no database operation is pending: the test proves nothing"
        # What the client got through fills the sockets' buffers (a few MiB) and the
        # chunk being inserted: the server took nothing more while it waited.
        assert not sending.done() and held_at < len(data) // 4, (
            f"the server took {held_at} bytes of {len(data)} while the database answered nothing")
        proxy.resume()  # the insert goes through, and the rest of the body with it
        await asyncio.wait_for(sending, 120)
    finally:
        sending.cancel()
    status, headers, _ = await upload.response(timeout=120)
    assert status == 201
    assert await client.digest(headers["location"]) == (200, hashlib.sha256(data).hexdigest())
    assert await db.fs.chunks.count_documents({}) == -(-len(data) // CHUNK)


# --- XSRF with a streamed body ---


async def test_the_xsrf_token_is_accepted_as_a_query_argument(client):
    token = client.cookies["_xsrf"]
    response = await client.fetch(f"/upload/q.txt?_xsrf={quote(token)}", "PUT", b"query",
                                  {"Cookie": f"_xsrf={token}", "X-XSRFToken": ""})
    assert response.code == 201


async def test_the_form_works_without_javascript(client, stage):
    """As a browser posts the form: the cookie, and the token in the form's action."""
    action = client.form_action  # as the home page gives it
    assert re.fullmatch(re.escape(FORM_PATHS[stage]) + r"\?_xsrf=[^&]+", action)
    body, form_type = multipart({"file": ("plain.txt", b"no script needed", "application/octet-stream")})
    response = await client.fetch(action, "POST", body, {"Content-Type": form_type, "X-XSRFToken": "",
                                                         "Cookie": f"_xsrf={client.cookies['_xsrf']}"})
    assert response.code == 302
    assert [name for _, name in await client.listed()] == ["plain.txt"]


@pytest.mark.parametrize("way", ["form", "put", "form field only"])
async def test_an_upload_without_the_xsrf_token_gets_403_and_nothing_stored(client, stage, way):
    token = client.cookies["_xsrf"]
    headers = {"Cookie": f"_xsrf={token}", "X-XSRFToken": ""}  # the cookie, but no token
    if way == "put":
        response = await client.fetch("/upload/x.bin", "PUT", b"data", headers)
    else:
        fields = [("file", ("x.bin", b"data", "application/octet-stream"))]
        if way == "form field only":  # as part 2's form sends it: in a body that is not looked into
            fields.insert(0, ("_xsrf", token))
        body, form_type = multipart(fields)
        # Where the form posts, without the token its action carries.
        response = await client.fetch(FORM_PATHS[stage], "POST", body, {**headers, "Content-Type": form_type})
    assert response.code == 403
    assert "_xsrf" in error_message(response.body.decode())
    assert await client.stored() == client.nothing_stored
