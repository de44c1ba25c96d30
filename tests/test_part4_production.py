"""What part 4 adds for the operator (part4_production/README.md): proxy headers
only when asked, timeouts for silent clients, running out of file descriptors, a
graceful stop, a database that hangs, and a bound on the uploads at once.

Each test starts the stage as a program (the `program` fixture), as an operator runs
it, against the real database, and speaks HTTP to it on raw connections where a
client must stall: a program of its own, with the options it checks, to stop or
starve as it needs. Deployment (processes, nginx, Compose) is in test_deploy.py."""

import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import time

import psutil
import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from coursekit.clients import Client, RawConnection, upload_collections
from coursekit.database import embedded_db
from coursekit.images import image_bytes
from coursekit.processes import free_port, port_open
from coursekit.stages import ROOT, load_stage
from coursekit.waiting import eventually

RUNS_ON = ["part4_production", "part5_live"]  # part 5 keeps what part 4 runs

CHUNK = 255 * 1024  # GridFS's chunk size: a body past it has a chunk stored
LIMIT = 30  # seconds: how long a connection waits before the test fails (a bound, not a delay)


# --- The client's address ---


async def test_proxy_headers_are_believed_only_with_xheaders(program, stage_app):
    forged = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.7"}
    for args, address in [((), "127.0.0.1"), (["--xheaders"], "203.0.113.9")]:
        running = program(*args)
        response = await Client(running.url, request_timeout=LIMIT).fetch("/healthz", headers=forged)
        assert response.code == 200
        # It logs a request once it has answered.
        await eventually(lambda: f"200 GET /healthz ({address})" in running.output(), timeout=LIMIT)
        running.stop()
    assert stage_app.options.xheaders is False  # off unless asked


async def test_the_health_check_answers_head_as_load_balancers_ask(program):
    response = await Client(program().url, request_timeout=LIMIT).fetch("/healthz", "HEAD")
    assert (response.code, response.body, response.headers.get("Content-Length")) == (200, b"", "2")


# --- Timeouts ---


def test_tornados_own_timeouts_are_an_hour_for_headers_and_none_for_a_body():
    """What part 3 ran with, and the lesson says."""
    params = HTTPServer(lambda request: None).conn_params
    assert (params.header_timeout, params.body_timeout) == (3600, None)


async def test_a_silent_connection_is_closed_wherever_it_waits(program, stage, db, connect, start_upload):
    running = program("--idle_timeout=1")
    client = Client(running.url, db, collections=upload_collections(stage))
    between_requests = await connect(running.url)
    status, _, _ = await between_requests.request("GET", "/healthz", timeout=LIMIT)
    assert status == 200  # kept alive, then nothing
    mid_headers = await connect(running.url)
    await mid_headers.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    mid_body = await connect(running.url)  # a page that takes no body, waiting for one
    await mid_body.send_headers("GET", "/healthz", ["Content-Length: 10"])
    mid_upload = await start_upload(client, "stalled.bin", 10 * CHUNK, os.urandom(CHUNK + 1000))
    # Its headers, then nothing: the timer starts with prepare(), not with the first piece.
    before_its_body = await start_upload(client, "silent.bin", 10 * CHUNK)
    for connection in (between_requests, mid_headers, mid_body, mid_upload, before_its_body):
        assert await connection.closed_by_server(LIMIT)
        connection.close()

    # The upload had a chunk stored (the log says how much came): it is deleted.
    async def nothing_stored():
        return not any((await client.stored()).values())

    await eventually(nothing_stored, timeout=LIMIT)
    output = running.output()
    assert "nothing from 127.0.0.1 for 1.0 s: closing the connection" in output
    assert f"client gone after {CHUNK + 1000} bytes of 'stalled.bin': deleting them" in output
    assert "Traceback" not in output


@pytest.mark.takes(5)
async def test_a_slow_but_steady_upload_is_never_cut(program, start_upload):
    pieces = [os.urandom(30 * 1024) for _ in range(12)]  # over a chunk, in 12 pieces
    client = Client(program("--idle_timeout=1").url, request_timeout=LIMIT)
    upload = await start_upload(client, "slow.bin", sum(map(len, pieces)))
    for piece in pieces:  # 12 pieces, 0.4 s apart: far longer than the timeout in all
        await upload.send(piece)
        await asyncio.sleep(0.4)
    status, headers, body = await upload.response(LIMIT)
    upload.close()
    assert status == 201, body
    assert (await client.fetch(headers["location"])).body == b"".join(pieces)


async def test_a_download_whose_client_stops_reading_is_cut_after_idle_timeout(program):
    running = program("--idle_timeout=1")
    data = os.urandom(20 * 1024 * 1024)  # far more than the socket buffers on either side hold
    response = await Client(running.url, request_timeout=LIMIT).put(data, "big.bin")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never reads, for now
    reader.connect(("127.0.0.1", running.port))
    reader.sendall(f"GET {response.headers['Location']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await eventually(lambda: "took nothing for 1.0 s: closing the connection" in running.output(), timeout=LIMIT)
    # Read now: what was under way, then the end, short of the file.
    reader.settimeout(LIMIT)
    received = 0
    with reader:
        while piece := await asyncio.to_thread(reader.recv, 1024 * 1024):
            received += len(piece)
    assert received < len(data)


# --- Out of file descriptors ---


async def test_out_of_file_descriptors_it_pauses_accepting_serves_what_it_has_and_recovers(program, connect):
    def few_files():  # in the child: a soft limit the app raises, to a hard one it cannot
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 64))

    running = program(preexec=few_files)
    kept = await connect(running.url)
    assert (await kept.request("GET", "/healthz", timeout=LIMIT))[2] == b"ok"
    assert psutil.Process(running.process.pid).rlimit(psutil.RLIMIT_NOFILE) == (64, 64)

    crowd_since = time.monotonic()
    crowd = [await connect(running.url) for _ in range(100)]
    pausing = "cannot accept connections (Too many open files, the limit is 64): pausing 0.5 s"
    await eventually(lambda: running.output().count(pausing) >= 3, timeout=LIMIT)
    # One line per pause, each pause half a second: not a line per attempt, as a loop
    # that tried again at once would log (hundreds a second).
    await asyncio.sleep(1)
    assert running.output().count(pausing) <= (time.monotonic() - crowd_since) / 0.5 + 2
    # A connection it has: still served.
    assert (await kept.request("GET", "/healthz", timeout=LIMIT))[2] == b"ok"

    for connection in crowd:
        connection.close()
    # A new connection, once files are free.
    assert (await Client(running.url, request_timeout=LIMIT).fetch("/healthz")).body == b"ok"
    kept.close()
    output = running.output()
    assert "up to 64 open files a process" in output  # raised from 32
    # One line per pause, each pause half a second: never a line per attempt.
    lines = output.splitlines()
    assert [line for line in lines if "Too many open files" in line] == [line for line in lines if pausing in line]
    assert "Traceback" not in output


async def test_the_listener_gives_streams_the_servers_buffer_sizes_and_refuses_tls(stage_code):
    class Sizes(tornado.web.RequestHandler):
        def get(self):
            stream = self.request.connection.stream
            self.write({"max_buffer_size": stream.max_buffer_size, "read_chunk_size": stream.read_chunk_size})

    app = tornado.web.Application([("/", Sizes)])
    server = HTTPServer(app, max_buffer_size=1_000_000, chunk_size=4096)
    sockets = bind_sockets(0, "127.0.0.1")
    listener = stage_code.Listener(server, sockets)
    try:
        response = await Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", request_timeout=LIMIT).fetch("/")
    finally:
        listener.close()
        await server.close_all_connections()
    assert json.loads(response.body) == {"max_buffer_size": 1_000_000, "read_chunk_size": 4096}
    # TLS: refused, not served as plain HTTP.
    tls = HTTPServer(app, ssl_options=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    with pytest.raises(ValueError, match="TLS ends at the proxy"):
        stage_code.Listener(tls, [])


# --- A graceful stop ---




async def test_a_header_block_over_64_kib_is_answered_431_not_just_closed(program, connect):
    running = program()
    too_large = await connect(running.url)
    await too_large.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    status, headers, body = await too_large.response(timeout=LIMIT)
    assert (status, headers["connection"]) == (431, "close")
    assert body == b"The request's headers are over 64 KiB in all.\n"
    # Only the header block: a chunk's size line over Tornado's 64 bytes is closed on as before.
    chunked = await connect(running.url)
    await chunked.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 100)
    assert await chunked.closed_by_server(timeout=LIMIT)
    assert (await Client(running.url, request_timeout=LIMIT).fetch("/healthz")).body == b"ok"
@pytest.mark.parametrize("processes", [1, 2])
async def test_sigterm_lets_uploads_finish_then_cuts_the_rest_and_deletes_their_chunks(program, stage, db, start_upload,
                                                                                       processes):
    size = 2 * CHUNK + 1000
    running = program(f"--processes={processes}", "--shutdown_timeout=3")
    client = Client(running.url, db, collections=upload_collections(stage))
    finishing = await start_upload(client, "finishing.bin", size, os.urandom(CHUNK + 1000))
    stalled = await start_upload(client, "stalled.bin", size, os.urandom(CHUNK + 1000))

    async def a_chunk_of_each():
        return await db.fs.chunks.count_documents({}) == 2

    await eventually(a_chunk_of_each, timeout=LIMIT)

    running.process.send_signal(signal.SIGTERM)
    # Refused at once: while the program is still running, waiting for the uploads.
    await eventually(lambda: not port_open("127.0.0.1", running.port), timeout=LIMIT)
    await finishing.send(os.urandom(size - CHUNK - 1000))
    status, _, body = await finishing.response(LIMIT)
    assert status == 201, body
    # After --shutdown_timeout, an answer before the connection closes: who cut it, and when to come back.
    status, headers, body = await stalled.response(LIMIT)
    assert (status, headers.get("retry-after"), headers.get("connection")) == (503, "10", "close"), headers
    assert b"The server is restarting" in body
    assert await stalled.closed_by_server(LIMIT)
    assert running.process.wait(timeout=LIMIT) == 0
    finishing.close()
    stalled.close()
    output = running.output()
    assert "stopping: cutting 1 requests short after 3.0 s, 1 of them uploads" in output
    assert "503 PUT /upload/stalled.bin" in output and "client gone" not in output
    assert "Traceback" not in output and "did not end" not in output
    [kept] = await db.fs.files.find().to_list(None)
    assert (kept["filename"], kept["length"]) == ("finishing.bin", size)
    assert await client.stored() == {"fs.files": 1, "fs.chunks": 3, "uploads": 1}  # the stalled one's chunk is gone


async def test_after_sigterm_a_kept_alive_connection_gets_one_last_answer_then_is_closed(program, start_upload,
                                                                                          connect):
    running = program(f"--shutdown_timeout={LIMIT}")
    client = Client(running.url, request_timeout=LIMIT)
    kept = await connect(running.url)
    status, headers, _ = await kept.request("GET", "/healthz", timeout=LIMIT)
    assert (status, headers.get("connection")) == (200, None)  # kept alive
    # An upload under way holds the stop open, up to --shutdown_timeout. The server
    # has read its headers once it answers a request sent after them.
    stalled = await start_upload(client, "stalled.bin", 2 * CHUNK, os.urandom(1000))
    assert (await kept.request("GET", "/healthz", timeout=LIMIT))[0] == 200

    running.process.send_signal(signal.SIGTERM)
    await eventually(lambda: not port_open("127.0.0.1", running.port), timeout=LIMIT)  # stopping
    # A request on the kept connection: answered, as its connection's last.
    status, headers, body = await kept.request("GET", "/healthz", timeout=LIMIT)
    assert (status, body, headers.get("connection")) == (200, b"ok", "close")
    assert await kept.closed_by_server(LIMIT)
    # Closed after that answer, not cut with the rest at the end of the stop.
    assert "stopping: cutting" not in running.output()
    stalled.close()  # the last request ends: the stop goes on
    await eventually(lambda: running.process.poll() is not None, timeout=LIMIT)  # the loop closes the socket
    assert running.process.returncode == 0
    assert "Traceback" not in running.output()


async def test_a_handlers_own_connection_close_is_sent_but_tornado_serves_the_connection_on():
    """Why part 4's stop turns keep-alive off in the server's conn_params: a header
    set by a handler does not make Tornado close the connection."""
    class Closing(tornado.web.RequestHandler):
        def get(self):
            self.set_header("Connection", "close")
            self.write("ok")

    server = HTTPServer(tornado.web.Application([("/", Closing)]))
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    try:
        async with RawConnection(f"http://127.0.0.1:{sockets[0].getsockname()[1]}") as connection:
            for _ in range(2):  # the second on a connection whose first answer said "close"
                status, headers, _ = await connection.request("GET", "/", timeout=LIMIT)
                assert (status, headers["connection"]) == (200, "close")
    finally:
        server.stop()
        await server.close_all_connections()


async def test_in_flight_waits_for_the_last_request_however_often_none_are_left(stage_code):
    in_flight = stage_code.InFlight()
    assert await in_flight.ended(0)  # none under way
    first, second = object(), object()  # handlers, as far as InFlight knows
    in_flight.start(first)
    waiting = asyncio.create_task(in_flight.ended(LIMIT))
    await asyncio.sleep(0)
    in_flight.end(first)  # none left: that wakes the waiter...
    in_flight.start(second)  # ...but another starts before it runs
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # it waits for that one too
    in_flight.end(second)
    assert await waiting
    in_flight.start(first)
    assert not await in_flight.ended(0.01)  # one under way, past the timeout


# --- A database that hangs ---


@pytest.mark.takes(10)
async def test_a_hung_database_gets_503_within_db_timeout_and_the_app_recovers(program, start_upload, tmp_path):
    port = free_port()
    with embedded_db(port, tmp_path / "db") as uri:
        [server] = [process for process in psutil.process_iter(["cmdline"])
                    if process.info["cmdline"] and str(port) in process.info["cmdline"]]
        running = program("--db_timeout=1", mongodb_uri=uri)
        client = Client(running.url, request_timeout=LIMIT)
        photo = image_bytes()
        upload = await start_upload(client, "photo.png", len(photo), photo)
        image_path = (await upload.response(LIMIT))[1]["location"]
        upload.close()

        server.send_signal(signal.SIGSTOP)  # hung: its port still takes connections
        try:
            for method, path in [("GET", "/"), ("GET", image_path), ("GET", "/healthz"), ("HEAD", "/healthz")]:
                response = await Client(running.url, request_timeout=LIMIT).fetch(path, method)
                assert response.code == 503, (method, path)
                assert response.headers.get("Retry-After") == "10"
                assert b"Traceback" not in response.body
            upload = await start_upload(client, "during.png", len(photo), photo)
            assert (await upload.response(LIMIT))[0] == 503
            upload.close()
        finally:
            server.send_signal(signal.SIGCONT)

        # Back: the same client, with no restart.
        async def healthy():
            return (await client.fetch("/healthz")).code == 200

        await eventually(healthy, timeout=LIMIT)
        assert (await client.fetch(image_path)).code == 200
        running.stop()  # before its database


# --- Load shedding ---


async def test_uploads_past_max_uploads_get_503_and_retry_after_before_their_body_is_read(program, connect,
                                                                                          start_upload):
    client = Client(program("--max_uploads=2").url)
    first = await start_upload(client, "first.bin", 1000, os.urandom(500))
    second = await start_upload(client, "second.bin", 1000, os.urandom(500))
    # Both under way before the third asks, or the server may read its headers first:
    # it has, once it answers a request sent after them (a database ping takes it turns
    # of its event loop; their headers took none).
    assert (await client.fetch("/healthz")).code == 200
    third = await connect(client)  # asks before it sends its body, as curl does for big files
    await third.send_headers("PUT", "/upload/third.bin", ["Content-Length: 1000000", "Expect: 100-continue"])
    answer = await third.rest(LIMIT)  # then closed: its body is never read
    third.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")  # no 100 Continue first
    assert b"\r\nRetry-After: 10\r\n" in answer and b"busy with other uploads" in answer

    await first.send(os.urandom(500))
    assert (await first.response(LIMIT))[0] == 201  # an upload ends: room for another
    again = await start_upload(client, "again.bin", 10, os.urandom(10))
    assert (await again.response(LIMIT))[0] == 201
    for connection in (first, second, again):
        connection.close()


async def test_uploads_that_trickle_lose_their_slots_to_uploads_that_progress(program, connect, start_upload):
    running = program("--max_uploads=2", "--idle_timeout=1")
    client = Client(running.url, request_timeout=LIMIT)
    # Two forms whose preamble comes a byte every 0.2 s: never silent for the timeout,
    # but 5 bytes a second, where the pace asks for 1 KiB.
    tricklers = [await connect(client) for _ in range(2)]
    for trickler in tricklers:
        await trickler.send_headers("POST", client.form_action, [
            "Content-Type: multipart/form-data; boundary=x", "Content-Length: 100000"])

    async def trickle():
        for _ in range(5 * LIMIT):  # longer than the test waits, unless cut
            for trickler in tricklers:
                await trickler.send(b"-")
            await asyncio.sleep(0.2)

    trickling = asyncio.ensure_future(trickle())
    try:
        assert (await client.fetch("/healthz")).code == 200  # their headers are read: they hold the slots
        assert (await client.put(os.urandom(1000), "refused.bin")).code == 503
        # Within two looks of the pace, both are cut, and a real upload has a slot.
        async def an_upload_gets_in():
            response = await client.put(os.urandom(1000), "real.bin")
            return response.code == 201

        await eventually(an_upload_gets_in, timeout=LIMIT)
    finally:
        trickling.cancel()
        for trickler in tricklers:
            trickler.close()
    assert "too slow, closing the connection" in running.output()


# --- Part 3 is streaming alone again ---


def test_part_3_leaves_running_it_for_real_to_part_4(stage_app):
    part3 = load_stage("part3_streaming")
    for option in ("processes", "xheaders", "idle_timeout", "shutdown_timeout", "db_timeout", "max_uploads"):
        assert option in stage_app.options and option not in part3.options
    code = "".join(path.read_text() for path in (ROOT / "part3_streaming").glob("*.py"))  # all its modules
    for word in ("fork_processes", "healthz", "xheaders", "SIGTERM"):
        assert word not in code
    assert "--processes" not in (ROOT / "part3_streaming" / "README.md").read_text()
