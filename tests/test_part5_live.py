"""What part 5 adds (part5_live/README.md): a WebSocket at /live that tells every open
page of every upload stored and deleted, by any process, through one change stream
per process; a reconnection that catches up; a bound on what waits for a slow client;
and the socket hygiene: origins, message sizes, pings, compression, --max_sockets,
the graceful stop, and a database without change streams.

Each test runs the stage as a program (the `program` fixture), on the real database,
and speaks WebSocket to it: Tornado's client, or a raw socket where the client must
misbehave (never read, never answer a ping). The browser test is in
tests/browser/test_browser.py."""

import asyncio
import base64
import datetime
import json
import os
import re
import signal
import socket
import sys

import psutil
import pytest
from bson import ObjectId
from motor.motor_tornado import MotorClient
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from coursekit.clients import Client
from coursekit.database import embedded_db, mongodb_answers
from coursekit.images import image_bytes
from coursekit.nginx import Nginx, nginx_executable
from coursekit.processes import Program, free_port
from coursekit.stages import ROOT
from coursekit.proxy import PausableProxy
from coursekit.waiting import eventually

RUNS_ON = ["part5_live"]

LIMIT = 30  # seconds: how long a test waits for a message before it fails (a bound, not a delay)


def ws_url(running, path="/live"):
    return running.url.replace("http://", "ws://") + path


async def live(running, **options):
    """A socket open to /live, once its first message, the "list", is in: (socket, list)."""
    socket_ = await websocket_connect(ws_url(running), **options)
    first = json.loads(await asyncio.wait_for(socket_.read_message(), LIMIT))
    assert first["type"] == "list"
    return socket_, first["uploads"]


async def next_message(socket_, timeout=LIMIT):
    """The next message, decoded; None once the server has closed the socket."""
    message = await asyncio.wait_for(socket_.read_message(), timeout)
    return None if message is None else json.loads(message)


def a_record(name, **fields):
    """An `uploads` record as the stage writes one (another process or tool may)."""
    return {"_id": ObjectId(), "filename": name, "contentType": "text/plain", "length": 5,
            "uploadDate": datetime.datetime.now(datetime.UTC), "original": ObjectId(), "thumbnail": None, **fields}


# --- Every page told, whichever process stored the upload ---


async def test_an_upload_through_one_process_reaches_the_sockets_of_another(program, db):
    first, second = program(), program()  # two processes (two hosts, as far as they know) on one database
    socket1, listed1 = await live(first)
    socket2, listed2 = await live(second)
    assert listed1 == listed2 == []
    client = Client(second.url, request_timeout=LIMIT)
    await client.visit()
    assert (await client.upload(image_bytes(size=(40, 30)), "red.png")).code == 302
    for socket_ in (socket1, socket2):
        message = await next_message(socket_)
        assert message["type"] == "upload"
        upload = message["upload"]
        assert (upload["filename"], upload["size"], upload["contentType"], upload["width"], upload["height"]) == (
            "red.png", f"{len(image_bytes(size=(40, 30)))} bytes", "image/png", 40, 30)
        assert upload["original"] == f"/uploads/{upload['id']}/orig"
        assert upload["thumbnail"] == f"/uploads/{upload['id']}/thumb"
        # What the page needs to show it: the file itself is a link, never in the message.
        assert (await Client(first.url).fetch(upload["original"])).body == image_bytes(size=(40, 30))
    # A deletion, by a tool or a person, reaches them too; so does a file that is not an image.
    await db.uploads.delete_one({"_id": ObjectId(upload["id"])})
    for socket_ in (socket1, socket2):
        assert await next_message(socket_) == {"type": "delete", "id": upload["id"]}
    assert (await client.put(b"hello", "hello.txt")).code == 201
    for socket_ in (socket1, socket2):
        upload = (await next_message(socket_))["upload"]
        assert (upload["filename"], upload["size"], upload["thumbnail"], upload["width"]) == (
            "hello.txt", "5 bytes", None, None)


async def test_records_the_home_page_would_not_list_are_not_told(program, db):
    running = program()
    socket_, _ = await live(running)
    # Written by hand, not as this stage writes them: a name that is a number; no
    # uploadDate, which the live page orders by; a thumbnail with no size.
    odd = [{"filename": 42, "note": "written by hand"}, {**a_record("undated.txt"), "uploadDate": None},
           a_record("sizeless.png", thumbnail=ObjectId())]
    await db.uploads.insert_many(odd)
    await db.uploads.insert_one(a_record("listed.txt"))
    assert (await next_message(socket_))["upload"]["filename"] == "listed.txt"
    socket_, listed = await live(running)
    assert [upload["filename"] for upload in listed] == ["listed.txt"]
    assert [name for _, name in await Client(running.url).listed()] == ["listed.txt"]
    assert "Traceback" not in running.output()


async def test_a_reconnecting_page_gets_what_it_missed_from_the_database(program, db):
    running = program()
    kept, gone = a_record("kept.txt"), a_record("gone.txt")
    await db.uploads.insert_many([kept, gone])
    socket_, listed = await live(running)
    assert [upload["filename"] for upload in listed] == ["gone.txt", "kept.txt"]
    socket_.close()
    # While it is away: one stored, one deleted.
    client = Client(running.url, request_timeout=LIMIT)
    assert (await client.put(b"new", "new.txt")).code == 201
    await db.uploads.delete_one({"_id": gone["_id"]})
    socket_, listed = await live(running)
    assert [upload["filename"] for upload in listed] == ["new.txt", "kept.txt"]


# --- The change stream through a database that goes away ---


async def test_the_stream_resumes_from_where_it_was_when_the_database_comes_back(program, db, mongodb_uri,
                                                                                 db_name):
    """The process's way to the database hangs; meanwhile another writes. Once the way is
    back, the stream resumes from its token: the change made meanwhile is told. (A stream
    opened afresh would start after it, and the page would never hear of it.)"""
    host, port = mongodb_uri.removeprefix("mongodb://").split("/")[0].split(":")
    with PausableProxy(host, int(port)) as proxy:
        running = program("--db_timeout=1", mongodb_uri=f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true")
        socket_, _ = await live(running)
        await db.uploads.insert_one(a_record("before.txt"))
        assert (await next_message(socket_))["upload"]["filename"] == "before.txt"
        proxy.pause()
        await eventually(lambda: "the change stream failed" in running.output(), timeout=LIMIT)
        await db.uploads.insert_one(a_record("meanwhile.txt"))
        proxy.resume()
        assert (await next_message(socket_))["upload"]["filename"] == "meanwhile.txt"
        await eventually(lambda: "the change stream is back" in running.output(), timeout=LIMIT)
        running.stop()


async def test_the_database_restarted_under_open_sockets(program, tmp_path):
    """The database stops and starts again (its files kept): the sockets stay open, and
    what is stored from then on reaches them."""
    port, storage = free_port(), tmp_path / "db"
    with embedded_db(port, storage) as uri:
        running = program("--db_timeout=1", mongodb_uri=uri)
        socket_, _ = await live(running)
        client = Client(running.url, request_timeout=LIMIT)
        assert (await client.put(b"one", "one.txt")).code == 201
        assert (await next_message(socket_))["upload"]["filename"] == "one.txt"
    await eventually(lambda: "the change stream failed" in running.output(), timeout=LIMIT)
    with embedded_db(port, storage):
        async def stored():
            return (await client.put(b"two", "two.txt")).code == 201
        await eventually(stored, timeout=LIMIT)
        assert (await next_message(socket_))["upload"]["filename"] == "two.txt"
        running.stop()
    assert "Traceback" not in running.output()


def secantusd(port, storage, *flags):
    """The embedded database, started by hand with `flags` (coursekit's embedded_db takes none)."""
    command = [os.path.join(os.path.dirname(sys.executable), "secantusd-py"), "--host", "127.0.0.1", "--port", port,
               "--storage-path", storage, "--log-level", "WARNING", *flags]
    uri = f"mongodb://127.0.0.1:{port}"
    return Program(command, port, ready=lambda: mongodb_answers(uri, timeout_ms=500)), uri


async def test_when_the_history_to_resume_from_is_gone_every_page_is_told_to_reload(program, tmp_path):
    """A database that keeps 20 changes of history (SecantusDB trims it every 1,000
    changes): the process's way to it hangs while 1,100 are made. The stream cannot
    resume; rather than miss them, it tells every page to reload its list, and
    watches on from now."""
    database, uri = secantusd(free_port(), tmp_path / "db", "--oplog-max-entries", "20")
    with database, PausableProxy("127.0.0.1", database.port) as proxy:
        running = program("--db_timeout=1", mongodb_uri=f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true")
        socket_, _ = await live(running)
        client = MotorClient(uri)
        uploads = client[running.envvars["MONGODB_DB"]].uploads
        await uploads.insert_one(a_record("seen.txt"))
        assert (await next_message(socket_))["upload"]["filename"] == "seen.txt"
        proxy.pause()
        await eventually(lambda: "the change stream failed" in running.output(), timeout=LIMIT)
        await uploads.insert_many([a_record(f"missed{n}.txt") for n in range(1100)])
        proxy.resume()
        assert await next_message(socket_) == {"type": "reload"}
        assert "every page reloads its list" in running.output()
        _, listed = await live(running)  # what the page does on "reload"
        assert [upload["filename"] for upload in listed] == [f"missed{n}.txt" for n in range(1099, 1079, -1)]
        await uploads.insert_one(a_record("after.txt"))
        assert (await next_message(socket_))["upload"]["filename"] == "after.txt"
        client.close()
        running.stop()


async def test_a_dropped_collection_tells_every_page_to_reload(program, db):
    socket_, _ = await live(program())
    await db.uploads.insert_one(a_record("before.txt"))
    assert (await next_message(socket_))["upload"]["filename"] == "before.txt"
    await db.uploads.drop()
    assert await next_message(socket_) == {"type": "reload"}
    await db.uploads.insert_one(a_record("after.txt"))
    assert (await next_message(socket_))["upload"]["filename"] == "after.txt"


async def test_against_a_database_without_change_streams_it_serves_and_says_live_updates_are_off(program, tmp_path):
    database, uri = secantusd(free_port(), tmp_path / "db", "--standalone")
    with database:
        running = program(mongodb_uri=uri)
        await eventually(lambda: "live updates are off" in running.output(), timeout=LIMIT)
        assert running.output().count("live updates") == 1  # one line, not one a try
        client = Client(running.url, request_timeout=LIMIT)
        page = (await client.fetch("/")).body.decode()
        assert 'data-live=""' in page  # the page's script opens no socket
        assert (await client.put(b"hello", "hello.txt")).code == 201
        assert [name for _, name in await client.listed()] == ["hello.txt"]
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(ws_url(running))
        assert refused.value.code == 404
        assert b"no change streams" in refused.value.response.body
        running.stop()


# --- Slow clients ---


def stalled_socket(running, path="/live"):
    """A WebSocket opened by hand that never reads a byte after the handshake's first."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: it fills fast
    raw.connect(("127.0.0.1", int(running.url.rsplit(":", 1)[1])))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    assert raw.recv(12) == b"HTTP/1.1 101"
    return raw


@pytest.mark.takes(20)
async def test_a_client_that_never_reads_is_closed_at_its_bound_and_the_server_does_not_grow(program, db):
    running = program()  # --live_backlog: 256 KiB
    reader, _ = await live(running)
    told = []

    async def read():
        while (message := await reader.read_message()) is not None:
            told.append(json.loads(message)["upload"]["filename"])

    reading = asyncio.ensure_future(read())
    stalled = [stalled_socket(running) for _ in range(20)]
    process = psutil.Process(running.process.pid)
    before = process.memory_info().rss
    # 1.6 MB of changes, 3,000 of them: each stalled socket would hold all of it, but for
    # the bound (and its kernel buffer's 128 KiB). Made 100 at a time, as the reader takes them.
    names = [f"{n:04}" + "x" * 300 for n in range(3000)]
    for start in range(0, len(names), 100):
        await db.uploads.insert_many([a_record(name) for name in names[start:start + 100]])
        await eventually(lambda: len(told) >= start + 100, timeout=LIMIT)
    assert told == names  # the socket that reads gets every one, in order, and stays open
    await eventually(lambda: running.output().count("bytes behind") == len(stalled), timeout=LIMIT)
    grown = process.memory_info().rss - before
    assert grown < 8 * 1024**2, f"grew by {grown / 1024**2:.1f} MB"
    for raw in stalled:
        raw.close()
    reader.close()
    await reading


@pytest.mark.takes(10)
async def test_a_peer_that_answers_no_ping_is_closed(program):
    running = program("--ping_interval=0.5")
    raw = stalled_socket(running)
    raw.settimeout(LIMIT)
    received = b""
    while chunk := raw.recv(65536):  # it reads, but never answers a ping: the server hangs up
        received += chunk
    assert b"\x89\x00" in received  # a ping frame came (FIN, opcode 9, no payload)


async def test_a_quiet_socket_outlives_the_idle_timeout_of_http_connections(program, db):
    """--idle_timeout closes an HTTP connection silent between requests; a socket is
    quiet while nothing is stored, and the pings (answered) say its peer is there."""
    running = program("--idle_timeout=0.5", "--ping_interval=0.5")
    socket_, _ = await live(running)
    await asyncio.sleep(2)
    await db.uploads.insert_one(a_record("later.txt"))
    assert (await next_message(socket_))["upload"]["filename"] == "later.txt"


# --- Hygiene ---


async def test_a_page_of_another_site_cannot_open_a_socket(program):
    running = program()
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(ws_url(running), headers={"Origin": "https://evil.example"}))
    assert refused.value.code == 403
    # Our own pages can (the Origin of the page, or a same-origin Sec-Fetch-Site).
    host = running.url.removeprefix("http://")
    socket_ = await websocket_connect(HTTPRequest(ws_url(running), headers={"Origin": f"http://{host}"}))
    assert json.loads(await socket_.read_message())["type"] == "list"


async def test_the_socket_takes_no_messages_and_no_big_ones(program):
    running = program()
    socket_, _ = await live(running)
    socket_.write_message("hello")
    assert await next_message(socket_) is None
    assert (socket_.close_code, socket_.close_reason) == (1008, "This socket takes no messages.")
    socket_, _ = await live(running)
    socket_.write_message("x" * 100_000)
    assert await next_message(socket_) is None
    assert socket_.close_code == 1009
    # Neither costs the server a traceback, nor its other sockets.
    other, _ = await live(running)
    assert "Traceback" not in running.output()


async def test_compression_is_not_agreed_even_when_asked(program):
    socket_ = await websocket_connect(ws_url(program()), compression_options={})
    assert "Sec-WebSocket-Extensions" not in socket_.headers


async def test_past_max_sockets_a_process_refuses_with_503_before_the_handshake(program):
    running = program("--max_sockets=2")
    first, _ = await live(running)
    second, _ = await live(running)
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(ws_url(running))
    assert refused.value.code == 503
    assert refused.value.response.headers["Retry-After"] == "10"
    assert b"holds its 2 live sockets already" in refused.value.response.body
    first.close()
    async def another():
        try:
            return await live(running)
        except HTTPClientError:
            return None
    assert await eventually(another, timeout=LIMIT)


@pytest.mark.parametrize("processes", [1, 2])
async def test_sigterm_closes_every_socket_with_going_away(program, processes):
    running = program(f"--processes={processes}")
    sockets = [(await live(running))[0] for _ in range(6)]
    running.process.send_signal(signal.SIGTERM)
    for socket_ in sockets:
        assert await next_message(socket_) is None
        assert (socket_.close_code, socket_.close_reason) == (1001, "The server is stopping: reconnect.")
    await eventually(lambda: running.process.poll() is not None, timeout=LIMIT)
    assert running.process.returncode == 0
    closed = re.findall(r"stopping: closing (\d+) live sockets", running.output())
    assert len(closed) == processes and sum(map(int, closed)) == 6
    assert "Traceback" not in running.output()


# --- Behind nginx ---


@pytest.mark.skipif(nginx_executable() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
async def test_a_socket_through_nginx_is_told_as_it_happens_and_says_goodbye(program, tmp_path):
    """deploy/nginx.conf in front: the handshake passes (Upgrade, Connection), a page of
    this site is let in as directly (Host passed on), and messages flow both ways."""
    running = program("--xheaders")
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    port = free_port()
    for old, new in {"listen 80;": f"listen 127.0.0.1:{port};",
                     "server app:8000;": f"server {running.url.removeprefix('http://')};"}.items():
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    with Nginx(site, port, tmp_path) as nginx:
        origin = f"http://127.0.0.1:{port}"
        socket_ = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/live", headers={"Origin": origin}))
        assert json.loads(await socket_.read_message())["type"] == "list"
        assert (await Client(nginx.url, request_timeout=LIMIT).put(b"hi", "through.txt")).code == 201
        assert (await next_message(socket_))["upload"]["filename"] == "through.txt"
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/live",
                                                headers={"Origin": "https://evil.example"}))
        assert refused.value.code == 403
        running.process.send_signal(signal.SIGTERM)  # through nginx too, the page hears why
        assert await next_message(socket_) is None
        assert socket_.close_code == 1001
