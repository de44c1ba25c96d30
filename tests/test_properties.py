"""Properties where parsing meets the wire, on part 3, checked by Hypothesis:

- a file the client sends in pieces of any sizes, as a PUT or as a form, is stored
  byte for byte, whatever the pieces' edges (inside the multipart boundary, across
  GridFS chunks);
- a Range request is answered with exactly the slice of the file it asks for, or
  416 when there is none, or the whole file when the header is not one byte range.

Part 3 runs as a program, one for each test and all its examples (each test stores
files: none only reads); these tests talk to it through raw connections, one piece
at a time. asyncio's connections send without delay (TCP_NODELAY), so that the
pieces leave as they are cut."""

import asyncio

import pytest
from gridfs import DEFAULT_CHUNK_SIZE as CHUNK  # pieces and ranges should cross chunks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coursekit.clients import Client, RawConnection, multipart

RUNS_ON = ["part3_streaming"]

EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
async def part3(program, db):
    """Part 3 served as a program, and a client that has its XSRF cookie."""
    client = Client(program().url, db)
    await client.visit()
    return client


async def send_in_pieces(client, method, path, body, cuts, headers=()):
    """Send a request whose body is cut at `cuts`, piece by piece; (status, headers, body)."""
    async with RawConnection(client) as connection:
        await connection.send_headers(method, path, [*headers, f"Content-Length: {len(body)}"])
        edges = [0, *sorted(set(cuts)), len(body)]
        for start, end in zip(edges, edges[1:]):
            await connection.send(body[start:end])
            await asyncio.sleep(0.001)  # let the server take this piece on its own
        return await connection.response(timeout=30)


def cuts_for(data):
    return st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12)


files = st.one_of(st.binary(max_size=2000), st.integers(CHUNK - 100, CHUNK + 3000).map(
    lambda size: bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)))


@EXAMPLES
@given(data=st.data(), content=files)
async def test_a_put_sent_in_any_pieces_is_stored_byte_for_byte(part3, data, content):
    cuts = data.draw(cuts_for(content))
    status, headers, body = await send_in_pieces(part3, "PUT", "/upload/pieces.bin", content, cuts,
                                                 ["Content-Type: application/octet-stream"])
    if not content:
        assert status == 400  # an empty file is refused, as by every stage
        return
    assert status == 201, body
    assert (await part3.fetch(headers["location"])).body == content


@EXAMPLES
@given(data=st.data(), content=files.filter(len))
async def test_a_form_sent_in_any_pieces_is_stored_byte_for_byte(part3, data, content):
    form, form_type = multipart({"file": ("pieces.bin", content, "application/octet-stream")})
    cuts = data.draw(cuts_for(form))
    status, _, _ = await send_in_pieces(part3, "POST", part3.form_action, form, cuts, [f"Content-Type: {form_type}"])
    assert status == 302
    # The newest upload is this one: the page lists it first.
    newest, _ = (await part3.listed())[0]
    assert (await part3.fetch(newest)).body == content


@pytest.fixture
async def stored_file(part3):
    """A file of a little over two GridFS chunks, and the path it is served at."""
    content = bytes((n * 7) % 251 for n in range(2 * CHUNK + 1234))
    response = await part3.put(content, "ranges.bin", {"Content-Type": "application/octet-stream"})
    assert response.code == 201, response.body
    return content, response.headers["Location"]


range_headers = st.one_of(
    st.tuples(st.integers(0, 3 * CHUNK), st.integers(0, 3 * CHUNK)).map(lambda r: f"bytes={r[0]}-{r[1]}"),
    st.integers(0, 3 * CHUNK).map(lambda start: f"bytes={start}-"),
    st.integers(0, 3 * CHUNK).map(lambda length: f"bytes=-{length}"),
    st.text(alphabet="bytes=-0123456789, ", max_size=20),  # anything, well formed or not
)


@EXAMPLES
@given(header=range_headers)
async def test_a_range_answer_is_the_slice_asked_for(part3, stored_file, header):
    content, path = stored_file
    size = len(content)
    response = await part3.fetch(path, headers={"Range": header})
    status, headers, body = response.code, response.headers, response.body
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
