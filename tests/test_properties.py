"""Properties where parsing meets the wire, on part 3, checked by Hypothesis:

- a file the client sends in pieces of any sizes, as a PUT or as a form, is stored
  byte for byte, whatever the pieces' edges (inside the multipart boundary, across
  GridFS chunks);
- a Range request is answered with exactly the slice of the file it asks for, or
  416 when there is none, or the whole file when the header is not one byte range.

Part 3 runs as a program; these tests talk to it through plain sockets, one piece
at a time, with TCP_NODELAY so that the pieces leave as they are cut."""

import http.client
import json
import socket
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import STAGES, GalleryParser, multipart, stage_program

RUNS_ON = ["part3_streaming"]

STAGE = "part3_streaming"
CHUNK = 255 * 1024  # GridFS's default chunk size: pieces and ranges should cross it
pytestmark = pytest.mark.skipif(STAGE not in STAGES, reason="part 3 is not in this tree")
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def part3(mongodb_uri):
    """Part 3 served as a program, and the XSRF token a script sends back."""
    with stage_program(STAGE, mongodb_uri, f"test_{uuid.uuid4().hex[:12]}") as program:
        address = urlsplit(program.url)
        connection = http.client.HTTPConnection(address.hostname, address.port)
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        token = SimpleCookie(response.getheader("Set-Cookie"))["_xsrf"].value
        yield address.hostname, address.port, token


def send_in_pieces(address, head, body, cuts):
    """Send a request whose body is cut at `cuts`, piece by piece; (status, body)."""
    host, port, token = address
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall((head + f"Cookie: _xsrf={token}\r\nX-XSRFToken: {token}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode())
        edges = [0, *sorted(set(cuts)), len(body)]
        for start, end in zip(edges, edges[1:]):
            sock.sendall(body[start:end])
            time.sleep(0.001)  # let the server take this piece on its own
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheaders(), response.read()


def fetch(address, path, headers=None):
    host, port, _ = address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def cuts_for(data):
    return st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12)


files = st.one_of(st.binary(max_size=2000), st.integers(CHUNK - 100, CHUNK + 3000).map(
    lambda size: bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)))


@EXAMPLES
@given(data=st.data(), content=files)
def test_a_put_sent_in_any_pieces_is_stored_byte_for_byte(part3, data, content):
    cuts = data.draw(cuts_for(content))
    status, headers, body = send_in_pieces(part3, "PUT /upload/pieces.bin HTTP/1.1\r\nHost: x\r\n"
                                           "Content-Type: application/octet-stream\r\n", content, cuts)
    if not content:
        assert status == 400  # an empty file is refused, as by every stage
        return
    assert status == 201, body
    assert fetch(part3, dict(headers)["Location"])[2] == content


@EXAMPLES
@given(data=st.data(), content=files.filter(len))
def test_a_form_sent_in_any_pieces_is_stored_byte_for_byte(part3, data, content):
    form, form_type = multipart({"file": ("pieces.bin", content, "application/octet-stream")})
    cuts = data.draw(cuts_for(form))
    status, headers, _ = send_in_pieces(part3, f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: {form_type}\r\n",
                                        form, cuts)
    assert status == 302
    # The newest upload is this one: the page lists it first.
    gallery = GalleryParser()
    gallery.feed(fetch(part3, "/")[2].decode())
    newest, _ = gallery.items[0]
    assert fetch(part3, newest)[2] == content


@pytest.fixture(scope="module")
def stored_file(part3):
    """A file of a little over two GridFS chunks, and the path it is served at."""
    content = bytes((n * 7) % 251 for n in range(2 * CHUNK + 1234))
    status, headers, body = send_in_pieces(part3, "PUT /upload/ranges.bin HTTP/1.1\r\nHost: x\r\n"
                                           "Content-Type: application/octet-stream\r\n", content, [])
    assert status == 201, body
    return content, json.loads(body)["id"], dict(headers)["Location"]


range_headers = st.one_of(
    st.tuples(st.integers(0, 3 * CHUNK), st.integers(0, 3 * CHUNK)).map(lambda r: f"bytes={r[0]}-{r[1]}"),
    st.integers(0, 3 * CHUNK).map(lambda start: f"bytes={start}-"),
    st.integers(0, 3 * CHUNK).map(lambda length: f"bytes=-{length}"),
    st.text(alphabet="bytes=-0123456789, ", max_size=20),  # anything, well formed or not
)


@EXAMPLES
@given(header=range_headers)
def test_a_range_answer_is_the_slice_asked_for(part3, stored_file, header):
    content, _, path = stored_file
    size = len(content)
    status, headers, body = fetch(part3, path, {"Range": header})
    if status == 200:  # not one byte range: the whole file, as RFC 9110 allows
        assert body == content
    elif status == 416:
        assert headers["Content-Range"] == f"bytes */{size}"
    else:
        assert status == 206
        first, last = map(int, headers["Content-Range"].removeprefix("bytes ").split("/")[0].split("-"))
        assert headers["Content-Range"].endswith(f"/{size}")
        assert body == content[first:last + 1]
        # ... and it is the slice the header asked for.
        spec = header.strip().removeprefix("bytes=")
        start, _, end = spec.partition("-")
        if start:
            asked_last = min(int(end), size - 1) if end else size - 1
            assert (first, last) == (int(start), asked_last)
        else:
            assert (first, last) == (max(size - int(end), 0), size - 1)
