"""What part 3 adds with --files_dir: a directory on disk served at /files/, in
chunks, and nothing outside it: no `..`, no symbolic link that leads out, no loop.

The requests go over real HTTP on a raw connection, so that their paths reach the
server exactly as written, `..` and all (an HTTP client would tidy them)."""

import asyncio
import collections
import ctypes
import logging
import os
import sys
import threading

import pytest
import pytest_asyncio

from coursekit.clients import RawConnection
from coursekit.serving import stage_served

RUNS_ON = ["part3_streaming", "part4_production", "part5_live"]  # parts 4 and 5 run the same code for real


async def raw_get(client, path):
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", path)
        return await connection.response()


# --- Paths inside and outside: one stage for all the cases ---

# These tests run in the module's event loop, where the stage they share is served.
in_the_shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served_files_dir(stage, stage_app, mongodb_uri, tmp_path_factory):
    """A client of the stage serving FOLDER/served as its --files_dir, where FOLDER/secret.txt
    is outside it, and symbolic links lead in, out, and round in a loop.

    Shared, for each stage, by the path cases: each GETs one path on a connection of its
    own, and none writes to the folder or the database, changes the app or stops it."""
    folder = tmp_path_factory.mktemp("files_dir")
    inside = folder / "served"
    (inside / "sub").mkdir(parents=True)
    (inside / "sub" / "inner.txt").write_text("inner")
    (inside / "page.html").write_text("<h1>hi</h1>")
    (folder / "secret.txt").write_text("secret")
    (inside / "link_out").symlink_to(folder / "secret.txt")
    (inside / "dir_out").symlink_to(folder)
    (inside / "link_in").symlink_to(inside / "sub" / "inner.txt")
    (inside / "loop").symlink_to(inside / "loop")
    async with stage_served(stage_app, stage, mongodb_uri, files_dir=str(inside)) as client:
        yield client


@in_the_shared_loop
@pytest.mark.parametrize("path", [
    "/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/sub/../../secret.txt",
    "/files/sub/%2E%2E%2F%2E%2E%2Fsecret.txt", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd",
    "/files/link_out", "/files/dir_out/secret.txt", "/files/sub", "/files/nothing.txt", "/files/a%00b",
    "/files/loop", "/files/loop/x", "/files/" + "a" * 5000, "/files/" + "a/" * 3000 + "x",
])
async def test_files_outside_the_directory_are_not_served(served_files_dir, path):
    status, _, body = await raw_get(served_files_dir, path)
    assert status == 404
    assert b"secret" not in body and b"root:" not in body


@in_the_shared_loop
@pytest.mark.parametrize("path, body, content_type", [
    ("/files/sub/inner.txt", b"inner", "text/plain"),
    ("/files/link_in", b"inner", "text/plain"),  # a link inside the directory is followed
    ("/files/sub/../page.html", b"<h1>hi</h1>", "text/html"),
])
async def test_files_inside_the_directory_are_served(served_files_dir, path, body, content_type):
    status, headers, received = await raw_get(served_files_dir, path)
    assert (status, received, headers["content-type"]) == (200, body, content_type)


# --- A stage of their own: one shrinks a file it serves, one has no --files_dir ---


async def test_a_file_that_shrinks_during_its_download_is_cut_short_and_logged(serve, stage_code, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=stage_code.log.name)
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


@pytest.mark.skipif(sys.platform != "linux", reason="renameat2(RENAME_EXCHANGE) is Linux's")
@pytest.mark.takes(10)
async def test_a_folder_swapped_for_a_link_outside_mid_request_serves_nothing_outside(serve, tmp_path):
    # served/d, a folder, and served/x, a link to outside/, trade places again and again,
    # atomically, while d/passwd is asked for: what is opened is checked, not the path.
    served, outside = tmp_path / "served", tmp_path / "outside"
    (served / "d").mkdir(parents=True)
    (served / "d" / "passwd").write_text("inside")
    outside.mkdir()
    (outside / "passwd").write_text("SECRET")
    (served / "x").symlink_to(outside)
    client = await serve(files_dir=str(served))
    libc = ctypes.CDLL(None, use_errno=True)
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    swapping = threading.Event()

    def swap():
        while swapping.is_set():
            libc.renameat2(at_cwd, bytes(served / "d"), at_cwd, bytes(served / "x"), exchange)

    swapping.set()
    swapper = threading.Thread(target=swap)
    swapper.start()
    answers = collections.Counter()
    try:
        for _ in range(1500):  # the previous code served the outside file once in about 300
            status, _, body = await raw_get(client, "/files/d/passwd")
            answers[status, body.decode(errors="replace")[:6]] += 1
    finally:
        swapping.clear()
        swapper.join()
    assert (200, "SECRET") not in answers, f"a file outside was served: {answers}"
    assert answers[200, "inside"] and sum(count for (status, _), count in answers.items() if status == 404)


async def test_files_are_not_served_without_a_files_dir(client):
    assert (await client.fetch("/files/anything")).code == 404
