"""What part 3 adds to downloads: a file sent a few GridFS chunks at a time, no faster
than its client takes it, reading only the chunks it needs; stopped when its client
goes; one Range, validators (ETag, Last-Modified) and HEAD, the same from GridFS and
from a file on disk.

Everything goes over real HTTP to a real database. A client that stops reading
speaks HTTP on a raw connection; the chunks the server reads are counted by a
listener on its database client."""

import asyncio
import datetime
import email.utils
import hashlib
import logging
import os
import re

import pytest
import pytest_asyncio
from gridfs import DEFAULT_CHUNK_SIZE as CHUNK
from motor.motor_tornado import MotorClient
from pymongo import monitoring
from tornado.simple_httpclient import HTTPStreamClosedError

from coursekit.clients import RawConnection, error_message
from coursekit.serving import stage_served
from coursekit.waiting import eventually, steady

RUNS_ON = ["part3_streaming", "part4_production", "part5_live"]  # parts 4 and 5 run the same code for real


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
async def counting_db(mongodb_uri, db_name):
    """(db, reads): the test's database, through a client of its own that counts the
    chunks asked for; closed after the stage that uses it has stopped."""
    reads = ChunkReads()
    motor_client = MotorClient(mongodb_uri, event_listeners=[reads])
    yield motor_client[db_name], reads
    motor_client.close()


@pytest.fixture
async def counted(counting_db, serve):
    """(client, reads): the stage on a database client that counts the chunks asked for."""
    db, reads = counting_db
    return await serve(db=db), reads


# --- Flow: no faster than the client, and only what is needed ---


async def test_a_client_gone_mid_download_stops_the_download(client, stage_code, caplog):
    response = await client.put(os.urandom(20 * 1024 * 1024))
    location = response.headers["Location"]
    caplog.set_level(logging.INFO, logger=stage_code.log.name)
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", location)
        await connection.reader.readuntil(b"\r\n\r\n")
        await connection.reader.readexactly(1000)
    # The handler noticed, stopped reading the file and closed its cursor; the request's
    # log line says the client closed it, not 200.
    await eventually(lambda: "client gone: stopped sending" in caplog.text)
    await eventually(lambda: re.search(rf"499 GET {re.escape(location)} ", caplog.text))
    assert (await client.digest(location))[0] == 200  # and the server serves on


async def test_a_client_that_does_not_read_holds_the_download_back(counted):
    client, reads = counted
    data = os.urandom(256 * CHUNK)  # 64 MiB
    location = (await client.put(data)).headers["Location"]
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", location)
        await connection.reader.readuntil(b"\r\n\r\n")
        # Read nothing, until the server has stopped reading for us: the socket's
        # buffers are full, and flush() waits.
        await eventually(lambda: reads.chunks)
        held_at = await steady(lambda: reads.chunks)
        assert held_at < 64, f"the server read {held_at} chunks for a client that took nothing"
        # Then read it all: the download goes on, and ends complete.
        body = await asyncio.wait_for(connection.reader.readexactly(len(data)), 60)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("method, headers, chunks", [
    ("GET", {"Range": "bytes=0-99"}, 1),
    ("GET", {"Range": f"bytes={5 * CHUNK + 10}-{5 * CHUNK + 20}"}, 1),  # chunk 5 alone: a seek
    ("GET", {"Range": f"bytes=-{CHUNK + 1}"}, 2),
    ("HEAD", {}, 0),
    ("GET", {"If-None-Match": "*"}, 0),
])
async def test_only_the_chunks_needed_are_read(counted, method, headers, chunks):
    client, reads = counted
    location = (await client.put(os.urandom(12 * CHUNK + 7))).headers["Location"]
    reads.chunks = 0
    response = await client.fetch(location, method, headers=headers)
    assert response.code in (200, 206, 304)
    assert reads.chunks == chunks


async def test_a_missing_chunk_ends_the_download_rather_than_send_wrong_bytes(client):
    data = os.urandom(12 * CHUNK)
    location = (await client.put(data)).headers["Location"]
    file_id = (await client.db.uploads.find_one())["original"]
    await client.db.fs.chunks.delete_one({"files_id": file_id, "n": 6})
    with pytest.raises(HTTPStreamClosedError):  # closed before Content-Length bytes came
        await client.fetch(location)
    before = await client.fetch(location, headers={"Range": f"bytes=0-{6 * CHUNK - 1}"})
    assert before.body == data[: 6 * CHUNK]
    # Missing from the start: nothing was sent yet, so an error page can be.
    await client.db.fs.chunks.delete_one({"files_id": file_id, "n": 0})
    response = await client.fetch(location)
    assert response.code == 404
    assert "damaged" in error_message(response.body.decode())


@pytest.mark.parametrize("damage", [
    {"$set": {"chunkSize": 0}}, {"$set": {"chunkSize": "255"}}, {"$set": {"length": "1000"}},
    {"$set": {"length": -5}}, {"$set": {"length": True}}, {"$unset": {"uploadDate": ""}},
    {"$set": {"uploadDate": "yesterday"}}, {"$set": {"length": 1000}},  # past its data, found before a byte goes
])
async def test_a_damaged_or_hand_written_file_document_is_a_404_not_a_500(client, damage):
    location = (await client.put(os.urandom(100))).headers["Location"]
    await client.db.fs.files.update_one({"_id": (await client.db.uploads.find_one())["original"]}, damage)
    response = await client.fetch(location)
    assert response.code == 404, damage
    assert "damaged" in error_message(response.body.decode())
    # HEAD reads no chunk: a length past the data looks like any other to it.
    head = await client.fetch(location, "HEAD")
    assert head.code == (200 if damage == {"$set": {"length": 1000}} else 404), damage
    assert int(head.headers["Content-Length"]) >= 0


# --- Range, validators, HEAD: the same on GridFS and on disk ---
# requested_range(), http_date() and to_the_second() are checked case by case in
# test_pure_functions.py; here, a few cases of each show what the handlers send.

# These tests run in the module's event loop, where the stage they share is served.
in_the_shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served_big_file(stage, stage_app, mongodb_uri, tmp_path_factory):
    """(client, {"gridfs": path, "disk": path}, data): one stage, served for the tests
    of this group, with one file of 3 MB and a bit, uploaded once to GridFS and
    written once to its --files_dir.

    Shared, for each stage, because these tests only read: GET and HEAD, with Range
    and validators. None of them changes the app's settings or the database, writes
    the file, or stops the server, so each finds the stage as the first did. (The
    tests above serve a stage of their own: they count chunks on a database client
    of their own, delete chunks, or leave a download cut short.)

    Served by coursekit's stage_served, not conftest's `serve`: that one lives in each
    test's own event loop and database; this one in the module's, on a database of its
    own, dropped at the end."""
    data = os.urandom(12 * CHUNK + 1234)
    files_dir = tmp_path_factory.mktemp("files_dir")
    (files_dir / "big.bin").write_bytes(data)
    async with stage_served(stage_app, stage, mongodb_uri, files_dir=str(files_dir)) as client:
        uploaded = await client.put(data, "big.bin")
        assert uploaded.code == 201, uploaded.body
        yield client, {"gridfs": uploaded.headers["Location"], "disk": "/files/big.bin"}, data


@pytest.fixture(params=["gridfs", "disk"])
def big_file(request, served_big_file):
    """(client, path, data): the shared file of 3 MB and a bit, from GridFS or from disk."""
    client, paths, data = served_big_file
    return client, paths[request.param], data


@in_the_shared_loop
@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 100),  # inside the first chunk
    ("bytes=261000-262000", 261000, 262001),  # across a chunk boundary
    (f"bytes={5 * CHUNK}-{7 * CHUNK - 1}", 5 * CHUNK, 7 * CHUNK),  # whole chunks, edge to edge
    ("bytes=-500", -500, None),  # the last 500: to the end, in the last chunk, a short one
    ("bytes=3000000-", 3000000, None),  # from there to the end: into the last chunk
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


@in_the_shared_loop
async def test_a_range_past_the_end_gets_416(big_file):
    client, path, data = big_file
    response = await client.fetch(path, headers={"Range": "bytes=3500000-"})
    assert response.code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert "outside" in error_message(response.body.decode())
    assert "Cache-Control" not in response.headers
    # An error page, whatever the file: not sent with its type, nor as an attachment.
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "Content-Disposition" not in response.headers


@in_the_shared_loop
async def test_if_range_gives_the_range_of_the_same_file_and_the_whole_of_another(big_file, request):
    client, path, data = big_file
    whole = await client.fetch(path)
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    an_hour_before = email.utils.format_datetime(email.utils.parsedate_to_datetime(modified)
                                                 - datetime.timedelta(hours=1), usegmt=True)
    # A date names one version of a GridFS file, never changed; not of a file on disk.
    by_date = 206 if request.node.callspec.params["big_file"] == "gridfs" else 200
    for if_range, code in [(etag, 206), (modified, by_date), (f"W/{etag}", 200), ('"another"', 200),
                           (an_hour_before, 200), ("not a date", 200)]:
        response = await client.fetch(path, headers={"Range": "bytes=100-199", "If-Range": if_range})
        assert response.code == code, if_range
        assert response.body == (data[100:200] if code == 206 else data)


@in_the_shared_loop
async def test_a_malformed_range_gets_the_whole_file(big_file):
    client, path, data = big_file
    response = await client.fetch(path, headers={"Range": "bytes=abc"})
    assert response.code == 200
    assert response.body == data


@in_the_shared_loop
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


@in_the_shared_loop
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


@in_the_shared_loop
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


@in_the_shared_loop
async def test_gridfs_downloads_may_be_cached_for_a_year(served_big_file):
    client, paths, _ = served_big_file
    response = await client.fetch(paths["gridfs"])
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{(await client.db.uploads.find_one())["original"]}"'
