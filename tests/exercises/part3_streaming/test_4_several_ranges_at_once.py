"""Part 3, exercise 4: several ranges at once.

A Range of several ranges, such as `Range: bytes=0-99,1000-1099,-10`, gets a 206 whose
body holds them all (RFC 9110, section 14.6): `Content-Type: multipart/byteranges;
boundary=B`, and for each range, in the order asked, a part with the file's
`Content-Type` and its own `Content-Range: bytes 0-99/SIZE`, then its bytes, read and
sent as one range's are (send_pieces()). The Content-Length is known before a byte is
sent. Only lists of at most 10 ranges, each within the file, in increasing order and
not overlapping, are served this way: any other list gets the whole file, a 200, as
the RFC allows. One range works as before. Both downloads do it: /uploads/<id>/orig and
/files/<path>.
"""

import os
import re

import pytest

from coursekit.clients import answer

RUNS_ON = ["part3_streaming"]

SIZE = 600_000  # three chunks of 255 KiB
DATA = os.urandom(SIZE)


def parts(response):
    """[(headers as a dict, bytes)] of a multipart/byteranges body."""
    boundary = re.fullmatch(r"multipart/byteranges; ?boundary=(\S+)", response.headers.get("Content-Type", ""))
    assert boundary, ("several ranges should come as Content-Type: multipart/byteranges; boundary=...; "
                      f"it is {response.headers.get('Content-Type')!r}")
    delimiter = b"--" + boundary.group(1).encode()
    *pieces, end = response.body.split(b"\r\n" + delimiter)
    first = pieces[0]
    assert first.startswith(delimiter + b"\r\n") and end == b"--\r\n", (
        "the body should open with --BOUNDARY and close with --BOUNDARY-- (RFC 9110, section 14.6)")
    found = []
    for piece in [first.removeprefix(delimiter), *pieces[1:]]:
        head, _, data = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        found.append(({name.lower(): value for name, value in headers.items()}, data))
    return found


@pytest.fixture(params=["gridfs", "disk"])
async def served_file(request, serve, tmp_path):
    """Where a file of SIZE bytes is served, from GridFS or from --files_dir."""
    (tmp_path / "data.bin").write_bytes(DATA)
    client = await serve(files_dir=str(tmp_path))
    if request.param == "disk":
        return client, "/files/data.bin"
    response = await client.fetch("/upload/data.bin", "PUT", DATA)
    assert response.code == 201, f"PUT /upload/data.bin should work as before (201); it answered {answer(response)}"
    return client, response.headers["Location"]


async def test_several_ranges_in_one_response(served_file):
    client, path = served_file
    response = await client.fetch(path, headers={"Range": "bytes=0-99,1000-1099,-10"})
    assert response.code == 206, f"GET {path} with three ranges should be a 206; it answered {answer(response)}"
    assert int(response.headers["Content-Length"]) == len(response.body), "the Content-Length is the body's"
    found = parts(response)
    wanted = [(0, 100), (1000, 1100), (SIZE - 10, SIZE)]
    assert len(found) == 3, f"a part for each of the three ranges; there are {len(found)}"
    for (headers, data), (start, end) in zip(found, wanted):
        content_range = f"bytes {start}-{end - 1}/{SIZE}"
        assert headers.get("content-range") == content_range, (
            f"the part of bytes {start} to {end - 1} should say Content-Range: {content_range}; "
            f"it says {headers.get('content-range')!r}")
        assert headers.get("content-type") == "application/octet-stream", "each part says the file's Content-Type"
        assert data == DATA[start:end], f"the part of bytes {start} to {end - 1} should hold them"

    single = await client.fetch(path, headers={"Range": "bytes=1000-1099"})
    assert single.code == 206 and single.body == DATA[1000:1100], "one range works as before"
    assert single.headers.get("Content-Range") == f"bytes 1000-1099/{SIZE}", "one range works as before"

    for ranges in ["1000-1099,0-99", "0-99,50-149", "0-99,700000-700099", ",".join(["0-1"] + [
            f"{n}-{n}" for n in range(10, 20)])]:
        response = await client.fetch(path, headers={"Range": f"bytes={ranges}"})
        assert response.code == 200 and response.body == DATA, (
            f"Range: bytes={ranges} should get the whole file, a 200; it got {answer(response)}")
