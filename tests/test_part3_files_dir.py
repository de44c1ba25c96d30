"""What part 3 adds with --files_dir: a directory on disk served at /files/, in
chunks, and nothing outside it: no `..`, no symbolic link that leads out, no loop.

The requests go over real HTTP on a raw connection, so that their paths reach the
server exactly as written, `..` and all (an HTTP client would tidy them)."""

import asyncio
import logging
import os

import pytest

from coursekit.clients import RawConnection

RUNS_ON = ["part3_streaming", "part4_production"]  # part 4 runs the same code for real


async def raw_get(client, path):
    async with RawConnection(client) as connection:
        await connection.send_headers("GET", path)
        return await connection.response()


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


async def test_a_file_that_shrinks_during_its_download_is_cut_short_and_logged(serve, stage_app, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=stage_app.log.name)
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


async def test_files_are_not_served_without_a_files_dir(client):
    assert (await client.fetch("/files/anything")).code == 404
