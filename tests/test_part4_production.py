"""What part 4 adds for the operator (part4_production/README.md): proxy headers
only when asked, timeouts for silent clients, running out of file descriptors, a
graceful stop, a database that hangs, and a bound on the uploads at once.

Each test starts the stage as a program, as an operator runs it, against the
real database, and speaks HTTP to it on raw sockets where a client must stall.
Deployment (processes, nginx, Compose) is in test_deploy.py."""

import http.client
import json
import os
import resource
import signal
import socket
import time
import urllib.request
from urllib.parse import urlsplit

import psutil
import pytest
from pymongo import MongoClient
from tornado.httpserver import HTTPServer

from support import ROOT, course, free_port, image_bytes, load_stage, stage_program

RUNS_ON = ["part4_production"]

STAGE = "part4_production"
CHUNK = 255 * 1024  # GridFS's chunk size: a body past it has a chunk stored
LIMIT = 30  # seconds: how long a socket waits before the test fails (a bound, not a delay)


@pytest.fixture
def database(mongodb_uri, db_name):
    """The database the program writes to, read with PyMongo; dropped afterwards."""
    with MongoClient(mongodb_uri) as client:
        yield client[db_name]
        client.drop_database(db_name)


def stored(database):
    return {name: database[name].count_documents({}) for name in ("fs.files", "fs.chunks", "uploads")}


class Raw:
    """A connection to a program, in raw HTTP: for clients that stall, or go silent."""

    def __init__(self, url, token=None):
        address = urlsplit(url)
        self.host, self.token = address.hostname, token
        self.sock = socket.create_connection((address.hostname, address.port), timeout=LIMIT)

    def send_headers(self, method, path, headers=()):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", *headers]
        if self.token:
            lines += [f"Cookie: _xsrf={self.token}", f"X-XSRFToken: {self.token}"]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data):
        self.sock.sendall(data)

    def response(self, method="GET"):
        """The answer: an http.client.HTTPResponse, its body read."""
        response = http.client.HTTPResponse(self.sock, method=method)
        response.begin()
        response.body = response.read()
        return response

    def closed_by_server(self):
        """Wait for the server to close the connection: True if it did, with no answer."""
        return self.rest() == b""

    def rest(self):
        """Whatever the server sends until it closes the connection."""
        received = b""
        try:
            while piece := self.sock.recv(65536):
                received += piece
        except ConnectionResetError:
            pass
        return received

    def close(self):
        self.sock.close()


def xsrf_token(url):
    """The `_xsrf` cookie the home page sets, as a script gets it before a PUT."""
    with urllib.request.urlopen(url + "/", timeout=LIMIT) as response:
        return response.headers["Set-Cookie"].split("_xsrf=", 1)[1].split(";", 1)[0]


def start_upload(url, token, name, size, sent):
    """A PUT of `size` bytes, of which only `sent` are sent: an upload under way."""
    upload = Raw(url, token)
    upload.send_headers("PUT", f"/upload/{name}", [f"Content-Length: {size}"])
    upload.send(os.urandom(sent))
    return upload


def logged(program, text):
    """Wait until the program's log says `text` (it logs a request once it has answered)."""
    return course.wait_for(program.process, lambda: text in program.output(), timeout=LIMIT)


def get(url, path, method="GET", headers=None):
    connection = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=LIMIT)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


# --- The client's address ---


def test_proxy_headers_are_believed_only_with_xheaders(mongodb_uri, database):
    forged = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.7"}
    for args, address in [((), "127.0.0.1"), (["--xheaders"], "203.0.113.9")]:
        with stage_program(STAGE, mongodb_uri, database.name, args=args) as program:
            assert get(program.url, "/healthz", headers=forged).status == 200
            assert logged(program, f"200 GET /healthz ({address})")
    assert load_stage(STAGE).options.xheaders is False  # off unless asked


def test_the_health_check_answers_head_as_load_balancers_ask(mongodb_uri, database):
    with stage_program(STAGE, mongodb_uri, database.name) as program:
        response = get(program.url, "/healthz", "HEAD")
    assert (response.status, response.body, response.getheader("Content-Length")) == (200, b"", "2")


# --- Timeouts ---


def test_tornados_own_timeouts_are_an_hour_for_headers_and_none_for_a_body():
    """What part 3 ran with, and the lesson says."""
    params = HTTPServer(lambda request: None).conn_params
    assert (params.header_timeout, params.body_timeout) == (3600, None)


def test_a_silent_connection_is_closed_wherever_it_waits(mongodb_uri, database):
    with stage_program(STAGE, mongodb_uri, database.name, args=["--idle_timeout=1"]) as program:
        token = xsrf_token(program.url)
        between_requests = Raw(program.url)
        between_requests.send_headers("GET", "/healthz")
        assert between_requests.response().status == 200  # kept alive, then nothing
        mid_headers = Raw(program.url)
        mid_headers.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        mid_body = Raw(program.url)  # a page that takes no body, waiting for one
        mid_body.send_headers("GET", "/healthz", ["Content-Length: 10"])
        mid_upload = start_upload(program.url, token, "stalled.bin", 10 * CHUNK, CHUNK + 1000)
        for connection in (between_requests, mid_headers, mid_body, mid_upload):
            assert connection.closed_by_server()
            connection.close()
        # The upload had a chunk stored (the log says how much came): it is deleted.
        assert course.wait_for(program.process, lambda: not any(stored(database).values()))
        output = program.output()
    assert "nothing from 127.0.0.1 for 1.0 s: closing the connection" in output
    assert f"client gone after {CHUNK + 1000} bytes of 'stalled.bin': deleting them" in output
    assert "Traceback" not in output


def test_a_slow_but_steady_upload_is_never_cut(mongodb_uri, database):
    pieces = [os.urandom(30 * 1024) for _ in range(12)]  # over a chunk, in 12 pieces
    with stage_program(STAGE, mongodb_uri, database.name, args=["--idle_timeout=1"]) as program:
        upload = Raw(program.url, xsrf_token(program.url))
        upload.send_headers("PUT", "/upload/slow.bin", [f"Content-Length: {sum(map(len, pieces))}"])
        for piece in pieces:  # 12 pieces, 0.4 s apart: far longer than the timeout in all
            upload.send(piece)
            time.sleep(0.4)
        response = upload.response("PUT")
        upload.close()
        assert response.status == 201, response.body
        upload_id = json.loads(response.body)["id"]
        assert get(program.url, f"/uploads/{upload_id}/orig").body == b"".join(pieces)


# --- Out of file descriptors ---


def test_out_of_file_descriptors_it_pauses_accepting_serves_what_it_has_and_recovers(mongodb_uri, database):
    def few_files():  # in the child: a soft limit the app raises, to a hard one it cannot
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 64))

    with stage_program(STAGE, mongodb_uri, database.name, preexec_fn=few_files) as program:
        address = urlsplit(program.url)
        kept = http.client.HTTPConnection(address.hostname, address.port, timeout=LIMIT)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b"ok"
        assert psutil.Process(program.process.pid).rlimit(psutil.RLIMIT_NOFILE) == (64, 64)

        crowd = [socket.create_connection((address.hostname, address.port), timeout=LIMIT) for _ in range(100)]
        pausing = "cannot accept connections (Too many open files, the limit is 64): pausing 0.5 s"
        assert course.wait_for(program.process, lambda: program.output().count(pausing) >= 3)
        kept.request("GET", "/healthz")  # a connection it has: still served
        assert kept.getresponse().read() == b"ok"

        for sock in crowd:
            sock.close()
        assert get(program.url, "/healthz").body == b"ok"  # a new connection, once files are free
        kept.close()
        output = program.output()
    assert "up to 64 open files a process" in output  # raised from 32
    # One line per pause, each pause half a second: never a line per attempt.
    lines = output.splitlines()
    assert [line for line in lines if "Too many open files" in line] == [line for line in lines if pausing in line]
    assert "Traceback" not in output


# --- A graceful stop ---


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_lets_uploads_finish_then_cuts_the_rest_and_deletes_their_chunks(mongodb_uri, database,
                                                                                   processes):
    size = 2 * CHUNK + 1000
    args = [f"--processes={processes}", "--shutdown_timeout=3"]
    with stage_program(STAGE, mongodb_uri, database.name, args=args) as program:
        token = xsrf_token(program.url)
        finishing = start_upload(program.url, token, "finishing.bin", size, CHUNK + 1000)
        stalled = start_upload(program.url, token, "stalled.bin", size, CHUNK + 1000)
        assert course.wait_for(program.process, lambda: database.fs.chunks.count_documents({}) == 2)

        program.process.send_signal(signal.SIGTERM)
        port = urlsplit(program.url).port
        # Refused at once: while the program is still running, waiting for the uploads.
        assert course.wait_for(program.process, lambda: not course.port_open("127.0.0.1", port))
        finishing.send(os.urandom(size - CHUNK - 1000))
        response = finishing.response("PUT")
        assert response.status == 201, response.body
        assert stalled.closed_by_server()  # after --shutdown_timeout, with no answer
        assert program.process.wait(timeout=LIMIT) == 0
        output = program.output()
    finishing.close()
    stalled.close()
    assert "stopping: cutting 1 requests short after 3.0 s, 1 of them uploads" in output
    assert f"client gone after {CHUNK + 1000} bytes of 'stalled.bin': deleting them" in output
    assert "Traceback" not in output and "did not end" not in output
    [kept] = database.fs.files.find()
    assert (kept["filename"], kept["length"]) == ("finishing.bin", size)
    assert stored(database) == {"fs.files": 1, "fs.chunks": 3, "uploads": 1}  # the stalled one's chunk is gone


# --- A database that hangs ---


def test_a_hung_database_gets_503_within_db_timeout_and_the_app_recovers(database, tmp_path):
    port = free_port()
    with course.embedded_db(port, tmp_path / "db") as uri:
        [server] = [process for process in psutil.process_iter(["cmdline"])
                    if process.info["cmdline"] and str(port) in process.info["cmdline"]]
        with stage_program(STAGE, uri, database.name, args=["--db_timeout=1"]) as program:
            token = xsrf_token(program.url)
            photo = Raw(program.url, token)
            photo.send_headers("PUT", "/upload/photo.png", [f"Content-Length: {len(image_bytes())}"])
            photo.send(image_bytes())
            image_path = f"/uploads/{json.loads(photo.response('PUT').body)['id']}/orig"
            photo.close()

            server.send_signal(signal.SIGSTOP)  # hung: its port still takes connections
            try:
                for method, path in [("GET", "/"), ("GET", image_path), ("GET", "/healthz"), ("HEAD", "/healthz")]:
                    response = get(program.url, path, method)
                    assert response.status == 503, (method, path)
                    assert response.getheader("Retry-After") == "10"
                    assert b"Traceback" not in response.body
                upload = Raw(program.url, token)
                upload.send_headers("PUT", "/upload/during.png", [f"Content-Length: {len(image_bytes())}"])
                upload.send(image_bytes())
                assert upload.response("PUT").status == 503
                upload.close()
            finally:
                server.send_signal(signal.SIGCONT)
            # Back: the same client, with no restart.
            assert course.wait_for(program.process, lambda: get(program.url, "/healthz").status == 200)
            assert get(program.url, image_path).status == 200


# --- Load shedding ---


def test_uploads_past_max_uploads_get_503_and_retry_after_before_their_body_is_read(mongodb_uri, database):
    with stage_program(STAGE, mongodb_uri, database.name, args=["--max_uploads=2"]) as program:
        token = xsrf_token(program.url)
        first = start_upload(program.url, token, "first.bin", 1000, 500)
        second = start_upload(program.url, token, "second.bin", 1000, 500)
        third = Raw(program.url, token)  # asks before it sends its body, as curl does for big files
        third.send_headers("PUT", "/upload/third.bin", ["Content-Length: 1000000", "Expect: 100-continue"])
        answer = third.rest()  # then closed: its body is never read
        third.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")  # no 100 Continue first
        assert b"\r\nRetry-After: 10\r\n" in answer and b"busy with other uploads" in answer

        first.send(os.urandom(500))
        assert first.response("PUT").status == 201  # an upload ends: room for another
        again = start_upload(program.url, token, "again.bin", 10, 10)
        assert again.response("PUT").status == 201
        for connection in (first, second, again):
            connection.close()


# --- Part 3 is streaming alone again ---


def test_part_3_leaves_running_it_for_real_to_part_4():
    part3, part4 = load_stage("part3_streaming"), load_stage(STAGE)
    for option in ("processes", "xheaders", "idle_timeout", "shutdown_timeout", "db_timeout", "max_uploads"):
        assert option in part4.options and option not in part3.options
    code = (ROOT / "part3_streaming" / "app.py").read_text()
    for word in ("fork_processes", "healthz", "xheaders", "SIGTERM"):
        assert word not in code
    assert "--processes" not in (ROOT / "part3_streaming" / "README.md").read_text()
