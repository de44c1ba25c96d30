"""What part 3 adds: uploads streamed into GridFS, any file type, and downloads in
chunks with Range, validators and HEAD, from GridFS and from a directory on disk.

Everything goes over real HTTP to a real database. Where a client must misbehave
(stop halfway, lie, send a chunked body) the test speaks HTTP on a raw socket."""

import asyncio
import datetime
import email.utils
import hashlib
import html
import io
import json
import logging
import os
import re
from urllib.parse import quote

import pytest
from bson import ObjectId
from motor.motor_tornado import MotorClient
from PIL import Image
from pymongo import monitoring
from tornado.httpserver import HTTPServer
from tornado.simple_httpclient import HTTPStreamClosedError
from tornado.netutil import bind_sockets

from coursekit.clients import upload_collections
from support import (Client, course, error_message, eventually, free_port, image_bytes, load_stage, multipart,
                     served, stage_program)

RUNS_ON = ["part3_streaming", "part4_production"]  # part 4 runs the same code for real

CHUNK = 255 * 1024  # GridFS's default chunk size
EMPTY = {"fs.files": 0, "fs.chunks": 0, "uploads": 0}



@pytest.fixture
async def serve(db, stage):
    """serve(**settings): a Client of make_app(db, **settings) on a free port."""
    servers = []

    async def start(**settings):
        [sock] = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(load_stage(stage).make_app(db, **settings))
        server.add_sockets([sock])
        servers.append(server)
        client = Client(f"http://127.0.0.1:{sock.getsockname()[1]}", db, upload_collections(stage))
        await client.fetch("/")  # the XSRF cookie, as a browser gets it
        return client

    yield start
    for server in servers:
        server.stop()
        await server.close_all_connections()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


async def put(client, data, filename="file.bin", headers=None):
    return await client.fetch(f"/upload/{quote(filename)}", "PUT", data, headers)


async def download_hash(client, path):
    """(status, SHA-256 of the body): the body is hashed as it streams in."""
    digest = hashlib.sha256()
    response = await client.fetch(path, streaming_callback=digest.update, request_timeout=300)
    return response.code, digest.hexdigest()


# --- Raw HTTP, for clients that misbehave ---


class RawConnection:
    def __init__(self, client):
        self.host, self.port = client.base_url.removeprefix("http://").split(":")
        self.client = client

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, int(self.port))
        return self

    async def __aexit__(self, *exc):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def send_headers(self, method, path, headers=()):
        token = self.client.cookies["_xsrf"]
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Cookie: _xsrf={token}",
                 f"X-XSRFToken: {token}", *headers]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def response(self):
        """(status, headers as a dict with lower-case names, body) of the answer."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 20)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if line)
        headers = {name.lower(): value for name, value in headers.items()}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", 0))), 20)
        return int(status_line.split()[1]), headers, body


async def raw_get(client, path):
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", path)
        return await connection.response()


# --- Round trips ---

SIZES = [1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK + 7, 10**7, 64 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("way", ["form", "put"])
async def test_any_file_round_trips_identical_through_both_ways_in(serve, way, size):
    client = await serve()
    data = os.urandom(size)
    if way == "form":
        response = await client.upload(data, "random.bin", "application/octet-stream")
        assert response.code == 302
    else:
        response = await put(client, data, "random.bin")
        assert response.code == 201
    [(href, name)] = await client.listed()
    assert name == "random.bin"
    assert await download_hash(client, href) == (200, sha256(data))
    files = await client.db.fs.files.find().to_list(None)
    assert [(file["length"], file["chunkSize"]) for file in files] == [(size, CHUNK)]
    assert await client.db.fs.chunks.count_documents({}) == -(-size // CHUNK)


async def test_put_answers_201_with_the_location_and_the_id(serve):
    client = await serve()
    response = await put(client, b"hello", "hello.txt")
    assert response.code == 201
    upload_id = json.loads(response.body)["id"]
    assert response.headers["Location"] == f"/uploads/{upload_id}/orig"
    assert response.headers["Content-Type"].startswith("application/json")
    document = await client.db.uploads.find_one({"_id": ObjectId(upload_id)})
    assert (document["filename"], document["contentType"], document["length"]) == ("hello.txt", "text/plain", 5)
    assert (await client.fetch(response.headers["Location"])).body == b"hello"


@pytest.mark.parametrize("way", ["form", "put"])
async def test_an_empty_file_is_refused_both_ways_and_nothing_stored(serve, way):
    client = await serve()
    response = await (client.upload(b"", "empty.bin") if way == "form" else put(client, b"", "empty.bin"))
    assert response.code == 400
    assert "empty" in error_message(response.body.decode())
    assert await client.stored() == EMPTY


def form(*parts, boundary="B"):
    """A multipart/form-data body of (name, filename, data) parts, written by hand."""
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        + (f'; filename="{filename}"\r\nContent-Type: application/octet-stream'.encode() if filename else b"")
        + b"\r\n\r\n" + data + b"\r\n"
        for name, filename, data in parts
    )
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


async def test_only_the_first_file_of_a_form_is_stored(serve):
    client = await serve()
    body, headers = form(("note", None, b"not me"), ("file", "first.txt", b"first"), ("file", "second.txt", b"second"))
    response = await client.fetch("/upload", "POST", body, headers)
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
async def test_a_malformed_form_is_refused_and_nothing_stored(serve, body):
    client = await serve()
    response = await client.fetch("/upload", "POST", body, {"Content-Type": "multipart/form-data; boundary=BOUNDARY"})
    assert response.code == 400
    assert "malformed" in error_message(response.body.decode())
    assert await eventually(lambda: empty(client))


async def test_a_post_that_is_not_a_form_is_refused(serve):
    client = await serve()
    response = await client.fetch("/upload", "POST", b"{}", {"Content-Type": "application/json"})
    assert response.code == 400
    assert "multipart/form-data" in error_message(response.body.decode())
    assert await client.stored() == EMPTY


async def test_the_home_page_takes_no_upload(serve):
    """Uploads have handlers of their own: a form posted to the home page is no upload."""
    client = await serve()
    body, headers = form(("file", "misplaced.txt", b"not here"))
    response = await client.fetch("/", "POST", body, headers)
    assert response.code == 405
    assert await client.stored() == EMPTY


async def empty(client):
    return await client.stored() == EMPTY


# --- Too big ---


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_declared_size_over_the_limit_gets_413_before_any_byte_is_sent(serve, way):
    client = await serve(max_upload_size=1000)
    path = "/upload" if way == "form" else "/upload/big.bin"
    async with RawConnection(client) as connection:
        # Headers only, and a size of 5 GB: the answer comes without the body.
        await connection.send_headers("POST" if way == "form" else "PUT", path,
                                      ["Content-Length: 5000000000", "Content-Type: multipart/form-data; boundary=B"])
        status, _, body = await connection.response()
    assert status == 413
    assert error_message(body.decode()) == "That file is too big: the limit is 1000 bytes."
    assert await client.stored() == EMPTY


async def test_the_limit_is_the_files_the_same_through_the_form_and_put(serve):
    client = await serve(max_upload_size=1000)
    assert (await put(client, os.urandom(1000))).code == 201
    assert (await client.upload(os.urandom(1000), "at-the-limit.bin", "application/octet-stream")).code == 302
    for response in [await put(client, os.urandom(1001)),
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
    assert await eventually(lambda: empty(client))


# --- Disconnects ---


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_client_gone_mid_upload_leaves_no_file_and_no_chunks(serve, stage, way, caplog):
    caplog.set_level(logging.INFO, logger=load_stage(stage).log.name)
    client = await serve()
    size = 10 * 1024 * 1024
    async with RawConnection(client) as connection:
        if way == "form":
            head = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="gone.bin"\r\n'
                    b"Content-Type: application/octet-stream\r\n\r\n")
            await connection.send_headers("POST", "/upload", [f"Content-Length: {len(head) + size + 7}",
                                                        "Content-Type: multipart/form-data; boundary=B"])
            await connection.send(head)
        else:
            await connection.send_headers("PUT", "/upload/gone.bin", [f"Content-Length: {size}"])
        for _ in range(8):
            await connection.send(os.urandom(64 * 1024))
        await eventually(lambda: client.db.fs.chunks.count_documents({}))  # the upload was under way
    # The connection is closed: what was stored goes.
    assert await eventually(lambda: empty(client))
    assert "client gone after" in caplog.text


async def test_a_client_gone_mid_download_stops_the_download(serve, stage, caplog):
    client = await serve()
    response = await put(client, os.urandom(20 * 1024 * 1024))
    location = response.headers["Location"]
    caplog.set_level(logging.INFO, logger=load_stage(stage).log.name)
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", location)
        await connection.reader.readuntil(b"\r\n\r\n")
        await connection.reader.readexactly(1000)
    # The handler noticed, stopped reading the file and closed its cursor.
    await eventually(lambda: asyncio.sleep(0, "client gone: stopped sending" in caplog.text))
    assert (await download_hash(client, location))[0] == 200  # and the server serves on


class ChunkReads(monitoring.CommandListener):
    """Counts the GridFS chunks the app asks the database for."""

    def __init__(self):
        self.chunks = 0

    def started(self, event):
        if event.command_name == "find" and event.command.get("find") == "fs.chunks":
            wanted = event.command["filter"]["n"]
            self.chunks += wanted["$lte"] - wanted["$gte"] + 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
async def counted(mongodb_uri, db_name, db, stage):
    """(client, reads): part 3 on a database client that counts the chunks asked for."""
    reads = ChunkReads()
    motor_client = MotorClient(mongodb_uri, event_listeners=[reads])
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(load_stage(stage).make_app(motor_client[db_name]))
    server.add_sockets([sock])
    client = Client(f"http://127.0.0.1:{sock.getsockname()[1]}", db)
    await client.fetch("/")
    yield client, reads
    server.stop()
    await server.close_all_connections()
    motor_client.close()


async def test_a_client_that_does_not_read_holds_the_download_back(counted):
    client, reads = counted
    data = os.urandom(256 * CHUNK)  # 64 MiB
    location = (await put(client, data)).headers["Location"]
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", location)
        await connection.reader.readuntil(b"\r\n\r\n")
        # Read nothing, until the server has stopped reading for us: the socket's
        # buffers are full, and flush() waits.
        seen = []

        async def settled():
            seen.append(reads.chunks)
            await asyncio.sleep(0.1)
            return len(seen) > 5 and seen[-1] == seen[-6] > 0
        await eventually(settled)
        assert reads.chunks < 64, f"the server read {reads.chunks} chunks for a client that took nothing"
        # Then read it all: the download goes on, and ends complete.
        body = await asyncio.wait_for(connection.reader.readexactly(len(data)), 60)
    assert sha256(body) == sha256(data)


@pytest.mark.parametrize("method, headers, chunks", [
    ("GET", {"Range": "bytes=0-99"}, 1),
    ("GET", {"Range": f"bytes={5 * CHUNK + 10}-{5 * CHUNK + 20}"}, 1),  # chunk 5 alone: a seek
    ("GET", {"Range": f"bytes=-{CHUNK + 1}"}, 2),
    ("HEAD", {}, 0),
    ("GET", {"If-None-Match": "*"}, 0),
])
async def test_only_the_chunks_needed_are_read(counted, method, headers, chunks):
    client, reads = counted
    location = (await put(client, os.urandom(12 * CHUNK + 7))).headers["Location"]
    reads.chunks = 0
    response = await client.fetch(location, method, headers=headers)
    assert response.code in (200, 206, 304)
    assert reads.chunks == chunks


async def test_a_missing_chunk_ends_the_download_rather_than_send_wrong_bytes(serve):
    client = await serve()
    data = os.urandom(12 * CHUNK)
    location = (await put(client, data)).headers["Location"]
    file_id = (await client.db.uploads.find_one())["original"]
    await client.db.fs.chunks.delete_one({"files_id": file_id, "n": 6})
    with pytest.raises(HTTPStreamClosedError):  # closed before Content-Length bytes came
        await client.fetch(location)
    before = await client.fetch(location, headers={"Range": f"bytes=0-{6 * CHUNK - 1}"})
    assert before.body == data[: 6 * CHUNK]
    # Missing from the start: nothing was sent yet, so an error page can be.
    await client.db.fs.chunks.delete_one({"files_id": file_id, "n": 0})
    response = await client.fetch(location)
    assert response.code == 500
    assert error_message(response.body.decode()) == "Internal Server Error"


# --- Range, validators, HEAD: the same on GridFS and on disk ---


@pytest.fixture(params=["gridfs", "disk"])
async def big_file(request, serve, tmp_path):
    """(client, path, data): a file of 3 MB and a bit, served from GridFS or from disk."""
    data = os.urandom(12 * CHUNK + 1234)
    (tmp_path / "big.bin").write_bytes(data)
    client = await serve(files_dir=str(tmp_path))
    if request.param == "disk":
        return client, "/files/big.bin", data
    return client, (await put(client, data, "big.bin")).headers["Location"], data


@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 100),  # the first bytes
    ("bytes=261000-262000", 261000, 262001),  # across a chunk boundary
    (f"bytes={5 * CHUNK}-{7 * CHUNK - 1}", 5 * CHUNK, 7 * CHUNK),  # whole chunks
    ("bytes=-500", -500, None),  # the last 500
    ("bytes=3000000-", 3000000, None),  # from there to the end
    ("bytes=0-99999999", 0, None),  # past the end: as much as there is
    ("bytes=-99999999", 0, None),
])
async def test_one_range_gets_206_and_those_bytes(big_file, header, start, end):
    client, path, data = big_file
    response = await client.fetch(path, headers={"Range": header})
    expected = data[start:end]
    assert response.code == 206
    assert response.body == expected
    first = start % len(data) if start < 0 else start
    assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert int(response.headers["Content-Length"]) == len(expected)


@pytest.mark.parametrize("header", ["bytes=3500000-", "bytes=-0"])
async def test_a_range_past_the_end_gets_416(big_file, header):
    client, path, data = big_file
    response = await client.fetch(path, headers={"Range": header})
    assert response.code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert "outside" in error_message(response.body.decode())
    assert "Cache-Control" not in response.headers
    # An error page, whatever the file: not sent with its type, nor as an attachment.
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "Content-Disposition" not in response.headers


async def test_if_range_gives_the_range_of_the_same_file_and_the_whole_of_another(big_file):
    client, path, data = big_file
    whole = await client.fetch(path)
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    an_hour_before = email.utils.format_datetime(email.utils.parsedate_to_datetime(modified)
                                                 - datetime.timedelta(hours=1), usegmt=True)
    for if_range, code in [(etag, 206), (modified, 206), (f"W/{etag}", 200), ('"another"', 200),
                           (an_hour_before, 200), ("not a date", 200)]:
        response = await client.fetch(path, headers={"Range": "bytes=100-199", "If-Range": if_range})
        assert response.code == code, if_range
        assert response.body == (data[100:200] if code == 206 else data)


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-3", "items=0-9", "bytes=0-1,5-9", "bytes=-"])
async def test_a_malformed_or_multiple_range_gets_the_whole_file(big_file, header):
    client, path, data = big_file
    response = await client.fetch(path, headers={"Range": header})
    assert response.code == 200
    assert response.body == data


async def test_head_gives_the_headers_of_get_and_no_body(big_file):
    client, path, data = big_file
    get = await client.fetch(path)
    head = await client.fetch(path, "HEAD", headers={"Range": "bytes=0-9"})  # Range is for GET only
    assert head.code == 200
    assert head.body == b""
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Accept-Ranges"] == "bytes"


async def test_etag_if_none_match_gives_304(big_file):
    client, path, _ = big_file
    etag = (await client.fetch(path)).headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)  # strong
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = await client.fetch(path, headers={"If-None-Match": header})
        assert response.code == 304, header
        assert response.body == b""
        assert response.headers["ETag"] == etag
    response = await client.fetch(path, headers={"If-None-Match": '"other"'})
    assert response.code == 200


async def test_last_modified_if_modified_since_gives_304(big_file):
    client, path, _ = big_file
    modified = email.utils.parsedate_to_datetime((await client.fetch(path)).headers["Last-Modified"])
    for when, code in [(modified, 304), (modified + datetime.timedelta(hours=1), 304),
                       (modified - datetime.timedelta(seconds=1), 200)]:
        response = await client.fetch(path, headers={"If-Modified-Since": email.utils.format_datetime(when, True)})
        assert response.code == code, when
    # If-None-Match wins: a tag that does not match means 200, whatever the date.
    response = await client.fetch(path, headers={"If-None-Match": '"other"',
                                                 "If-Modified-Since": email.utils.format_datetime(modified, True)})
    assert response.code == 200
    response = await client.fetch(path, headers={"If-Modified-Since": "not a date"})
    assert response.code == 200


async def test_gridfs_downloads_may_be_cached_for_a_year(serve):
    client = await serve()
    location = (await put(client, b"forever", "f.txt")).headers["Location"]
    response = await client.fetch(location)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{(await client.db.uploads.find_one())["original"]}"'


# --- Not images ---


@pytest.mark.parametrize("way", ["form", "put"])
@pytest.mark.parametrize("filename, content_type, data, served_as", [
    ("page.html", "text/html", b"<script>alert(document.cookie)</script>", "text/plain"),
    ("steal.js", "text/javascript", b"fetch('/upload/x', {method: 'PUT', body: document.cookie})", "text/plain"),
    ("site.css", "text/css", b"body { display: none }", "text/plain"),
    ("drawing.svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
     "application/octet-stream"),
    ("fake.png", "image/png", b"<html><script>alert(1)</script></html>", "application/octet-stream"),
])
async def test_other_files_are_served_as_attachments_without_a_thumbnail(serve, way, filename, content_type, data,
                                                                         served_as):
    client = await serve()
    if way == "form":
        assert (await client.upload(data, filename, content_type)).code == 302
    else:
        assert (await put(client, data, filename, {"Content-Type": content_type})).code == 201
    [(href, name)] = await client.listed()
    response = await client.fetch(href)
    assert response.body == data
    # Not the claimed type: one that no page of ours can run as a script or a style.
    assert response.headers["Content-Type"] == served_as
    claimed = await client.db.uploads.find_one()
    assert claimed["contentType"] == content_type  # kept, and listed
    assert f'<span class="type">{content_type}</span>' in (await client.fetch("/")).body.decode()
    assert response.headers["Content-Disposition"] == f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].endswith("; sandbox")  # no script, even if displayed
    thumbnail = await client.fetch(href.replace("/orig", "/thumb"))
    assert thumbnail.code == 404
    assert "not an image" in error_message(thumbnail.body.decode())
    assert await client.db.fs.files.count_documents({}) == 1


async def test_the_listing_shows_name_size_and_type_of_files_and_a_badge(serve):
    client = await serve()
    await put(client, os.urandom(1536), "notes.pdf")
    await put(client, image_bytes(size=(40, 30)), "photo.png")
    html = (await client.fetch("/")).body.decode()
    items = re.findall(r"<li>(.*?)</li>", html, re.S)
    assert len(items) == 2
    photo, notes = items
    assert 'class="original file"' in notes and "file.svg" in notes
    assert "notes.pdf" in notes and "1.5 KiB" in notes and "application/pdf" in notes
    assert "/thumb" in photo and "40 × 30" in photo and "image/png" in photo


@pytest.mark.parametrize("filename, header", [
    ('quote"back\\slash%.txt', "attachment; filename=\"quote_back_slash_.txt\"; "
                                "filename*=UTF-8''quote%22back%5Cslash%25.txt"),
    ("été 日本.txt", "attachment; filename=\"_t_ __.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%20%E6%97%A5%E6%9C%AC.txt"),
])
async def test_attachment_names_are_given_safely(serve, filename, header):
    client = await serve()
    response = await put(client, b"text", filename)
    assert response.code == 201
    download = await client.fetch(response.headers["Location"])
    assert download.headers["Content-Disposition"] == header


# --- Images: thumbnails from the file read back from GridFS ---


COLORS = {"RGB": "teal", "CMYK": (0, 200, 200, 0), "P": 7, "LA": (90, 200), "I;16": 40000, "RGBA": (0, 128, 128, 100)}


@pytest.mark.parametrize("way", ["form", "put"])
@pytest.mark.parametrize("mode, format", [("RGB", "JPEG"), ("CMYK", "JPEG"), ("P", "PNG"), ("LA", "PNG"),
                                          ("I;16", "PNG"), ("RGBA", "WEBP"), ("P", "GIF")])
async def test_images_get_a_thumbnail_and_are_served_inline(serve, way, mode, format):
    client = await serve()
    data = image_bytes(format, size=(600, 300), mode=mode, color=COLORS[mode])
    content_type = f"image/{format.lower()}"
    if way == "form":
        assert (await client.upload(data, "picture", "application/octet-stream")).code == 302
    else:
        assert (await put(client, data, "picture")).code == 201  # no type, no extension
    [(href, _)] = await client.listed()
    original = await client.fetch(href)
    assert original.body == data
    assert original.headers["Content-Type"] == content_type  # what the image is, found by decoding it
    assert "Content-Disposition" not in original.headers
    thumbnail = await client.fetch(href.replace("/orig", "/thumb"))
    assert thumbnail.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.body)) as image:
        assert image.size == (128, 64)
    document = await client.db.uploads.find_one()
    assert (document["width"], document["height"], document["contentType"]) == (600, 300, content_type)


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_decompression_bomb_is_refused_and_nothing_stored(serve, way):
    client = await serve()
    side = int((Image.MAX_IMAGE_PIXELS * 2.5) ** 0.5)  # only the header says so: the file is small
    data = image_bytes("PNG", size=(side, side), mode="1")
    response = await (client.upload(data, "bomb.png") if way == "form" else put(client, data, "bomb.png"))
    assert response.code == 400
    assert "too many pixels" in error_message(response.body.decode())
    assert await client.stored() == EMPTY


async def test_a_truncated_image_is_refused_and_nothing_stored(serve):
    client = await serve()
    data = image_bytes("JPEG", size=(400, 300))
    response = await put(client, data[: len(data) // 2], "cut.jpg")
    assert response.code == 400
    assert "truncated" in error_message(response.body.decode())
    assert await client.stored() == EMPTY


async def test_a_file_that_only_begins_like_an_image_is_kept_as_a_file(serve):
    client = await serve()
    data = b"\x89PNG\r\n\x1a\n" + b"not a PNG after all" * 100
    assert (await put(client, data, "odd.png")).code == 201
    [(href, _)] = await client.listed()
    response = await client.fetch(href)
    assert response.body == data
    assert response.headers["Content-Disposition"].startswith("attachment;")


async def test_a_photo_taken_sideways_is_listed_as_it_is_shown(serve):
    client = await serve()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned a quarter
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), "olive").save(buffer, "JPEG", exif=exif)
    assert (await put(client, buffer.getvalue(), "sideways.jpg")).code == 201
    document = await client.db.uploads.find_one()
    assert (document["width"], document["height"]) == (200, 400)
    [(href, _)] = await client.listed()
    with Image.open(io.BytesIO((await client.fetch(href.replace("/orig", "/thumb"))).body)) as thumbnail:
        assert thumbnail.size == (64, 128)


async def test_thumbnails_can_be_made_on_the_event_loop(serve):
    client = await serve(thumbnail_executor=None)  # as part 2's bench/blocking.py does
    assert (await put(client, image_bytes(size=(256, 256)), "loop.png")).code == 201
    assert (await client.db.uploads.find_one())["width"] == 256


async def test_an_image_whose_file_was_deleted_is_a_404(serve):
    client = await serve()
    await put(client, image_bytes(), "gone.png")
    document = await client.db.uploads.find_one()
    await client.db.fs.files.delete_one({"_id": document["original"]})
    response = await client.fetch(f"/uploads/{document['_id']}/orig")
    assert response.code == 404
    assert "missing from the database" in error_message(response.body.decode())


async def test_the_database_failing_mid_upload_gets_503(stage, tmp_path, caplog):
    port = free_port()
    db = MotorClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=1000).faults
    async with served(load_stage(stage).make_app(db)) as base_url:
        client = Client(base_url, db)
        with course.embedded_db(port, tmp_path / "db"):
            await client.fetch("/")  # the XSRF cookie
            connection = await RawConnection(client).__aenter__()
            await connection.send_headers("PUT", "/upload/big.bin", ["Content-Length: 10000000"])
            await connection.send(os.urandom(3 * CHUNK))
            await eventually(lambda: db.fs.chunks.count_documents({}))
        # The database has stopped, with chunks of the upload in it. One chunk more:
        # all of it is read before the insert fails (bytes left unread when the server
        # closes would reset the connection, and the answer could be lost).
        await connection.send(os.urandom(CHUNK))
        status, _, body = await connection.response()
        await connection.__aexit__()
    assert status == 503
    assert "database failed" in error_message(body.decode())
    assert "Traceback" not in body.decode()
    assert "left behind" in caplog.text  # what could not be deleted is said
    db.client.close()


# --- XSRF with a streamed body ---


async def test_the_xsrf_token_is_accepted_as_a_query_argument(serve):
    client = await serve()
    token = client.cookies["_xsrf"]
    response = await client.fetch(f"/upload/q.txt?_xsrf={quote(token)}", "PUT", b"query",
                                  {"Cookie": f"_xsrf={token}", "X-XSRFToken": ""})
    assert response.code == 201


async def test_the_form_works_without_javascript(serve):
    """As a browser posts the form: the cookie, and the token in the form's action."""
    client = await serve()
    page = (await client.fetch("/")).body.decode()
    [action] = re.findall(r'<form class="upload" action="([^"]+)"', page)
    assert re.fullmatch(r"/upload\?_xsrf=[^&]+", html.unescape(action))
    body, headers = form(("file", "plain.txt", b"no script needed"))
    response = await client.fetch(html.unescape(action), "POST", body,
                                  {**headers, "X-XSRFToken": "", "Cookie": f"_xsrf={client.cookies['_xsrf']}"})
    assert response.code == 302
    assert [name for _, name in await client.listed()] == ["plain.txt"]


@pytest.mark.parametrize("way", ["form", "put", "form field only"])
async def test_an_upload_without_the_xsrf_token_gets_403_and_nothing_stored(serve, way):
    client = await serve()
    token = client.cookies["_xsrf"]
    headers = {"Cookie": f"_xsrf={token}", "X-XSRFToken": ""}  # the cookie, but no token
    if way == "put":
        response = await client.fetch("/upload/x.bin", "PUT", b"data", headers)
    else:
        parts = [("file", "x.bin", b"data")]
        if way == "form field only":  # as part 2's form sends it: in a body that is not looked into
            parts.insert(0, ("_xsrf", None, token.encode()))
        body, form_type = form(*parts)
        response = await client.fetch("/upload", "POST", body, {**headers, **form_type})
    assert response.code == 403
    assert "_xsrf" in error_message(response.body.decode())
    assert await client.stored() == EMPTY


# --- /files/: a directory on disk, and nothing outside it ---


@pytest.fixture
async def files_dir(serve, tmp_path):
    """(client, tmp_path): tmp_path/served is served; tmp_path/secret.txt is outside it."""
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    (served / "sub" / "inner.txt").write_text("inner")
    (served / "page.html").write_text("<h1>hi</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    (served / "link_out").symlink_to(tmp_path / "secret.txt")
    (served / "dir_out").symlink_to(tmp_path)
    (served / "link_in").symlink_to(served / "sub" / "inner.txt")
    (served / "loop").symlink_to(served / "loop")
    return await serve(files_dir=str(served)), tmp_path


@pytest.mark.parametrize("path", [
    "/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/sub/../../secret.txt",
    "/files/sub/%2E%2E%2F%2E%2E%2Fsecret.txt", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
    "/files/link_out", "/files/dir_out/secret.txt", "/files/sub", "/files/nothing.txt", "/files/a%00b",
    "/files/loop", "/files/loop/x", "/files/" + "a" * 5000, "/files/" + "a/" * 3000 + "x",
])
async def test_files_outside_the_directory_are_not_served(files_dir, path):
    client, _ = files_dir
    status, _, body = await raw_get(client, path)
    assert status == 404
    assert b"secret" not in body and b"root:" not in body


@pytest.mark.parametrize("path, body, content_type", [
    ("/files/sub/inner.txt", b"inner", "text/plain"),
    ("/files/link_in", b"inner", "text/plain"),  # a link inside the directory is followed
    ("/files/sub/../page.html", b"<h1>hi</h1>", "text/html"),
])
async def test_files_inside_the_directory_are_served(files_dir, path, body, content_type):
    client, _ = files_dir
    status, headers, received = await raw_get(client, path)
    assert (status, received, headers["content-type"]) == (200, body, content_type)


async def test_a_file_that_shrinks_during_its_download_is_cut_short_and_logged(serve, stage, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=load_stage(stage).log.name)
    size = 64 * 1024 * 1024
    with open(tmp_path / "shrinking.bin", "wb") as file:
        file.truncate(size)  # sparse: no need to write it
    client = await serve(files_dir=str(tmp_path))
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", "/files/shrinking.bin")
        head = await connection.reader.readuntil(b"\r\n\r\n")
        assert f"Content-Length: {size}".encode() in head
        await connection.reader.readexactly(1024 * 1024)
        os.truncate(tmp_path / "shrinking.bin", 2 * 1024 * 1024)
        rest = await asyncio.wait_for(connection.reader.read(), 20)  # until the server closes
    assert 1024 * 1024 + len(rest) < size  # the client sees fewer bytes than announced
    assert "shrank during the download" in caplog.text
    assert "cutting the response short" in caplog.text
    assert "Uncaught exception" not in caplog.text


async def test_files_are_not_served_without_a_files_dir(serve, tmp_path):
    client = await serve()
    assert (await client.fetch("/files/anything")).code == 404


# --- The program: its new options ---


async def test_the_program_takes_max_upload_size_and_files_dir(stage, mongodb_uri, db_name, tmp_path, db):
    (tmp_path / "hello.txt").write_text("hello")
    args = ["--max_upload_size=10", f"--files_dir={tmp_path}"]
    with stage_program(stage, mongodb_uri, db_name, args=args) as program:
        client = Client(program.url, db)
        await client.fetch("/")
        assert (await client.fetch("/files/hello.txt")).body == b"hello"
        assert (await put(client, b"0123456789")).code == 201
        too_big = await put(client, b"0123456789+")
        assert too_big.code == 413
        assert error_message(too_big.body.decode()) == "That file is too big: the limit is 10 bytes."
        assert "Traceback" not in program.output()
