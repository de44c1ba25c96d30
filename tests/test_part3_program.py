"""Part 3's program, as a learner runs it: the options it adds, --max_upload_size and
--files_dir, taken from the command line and obeyed; and the server's own limit on the
bodies of requests that upload nothing."""

import pytest

from coursekit.clients import Client, RawConnection, error_message
from coursekit.database import database_of_its_own
from coursekit.processes import StageLauncher

RUNS_ON = ["part3_streaming", "part4_production", "part5_live"]  # parts 4 and 5 run the same code for real


async def test_the_program_takes_max_upload_size_and_files_dir(program, db, tmp_path):
    (tmp_path / "hello.txt").write_text("hello")
    running = program("--max_upload_size=10", f"--files_dir={tmp_path}")
    client = Client(running.url, db)
    await client.visit()
    assert (await client.fetch("/files/hello.txt")).body == b"hello"
    assert (await client.put(b"0123456789")).code == 201
    too_big = await client.put(b"0123456789+")
    assert too_big.code == 413
    assert error_message(too_big.body.decode()) == "That file is too big: the limit is 10 bytes."
    assert "Traceback" not in running.output()


async def test_the_program_makes_its_indexes_at_start_up_not_at_each_upload(program, stage, db):
    running = program()
    await Client(running.url, db).visit()  # it serves: its start-up is over
    keys = {collection: [(list(index["key"]), index.get("unique", False))
                         for index in (await db[collection].index_information()).values()]
            for collection in ("fs.chunks", "uploads_in_progress")}
    # The one by which GridFS readers find a file's chunks; with no upload made yet.
    assert ([("files_id", 1), ("n", 1)], True) in keys["fs.chunks"]
    assert await db.fs.chunks.count_documents({}) == 0
    # Part 4's sweep finds stale uploads by theirs.
    assert (([("updated", 1)], False) in keys["uploads_in_progress"]) == (stage in ("part4_production", "part5_live"))


@pytest.fixture(scope="module")
def running_with_hello_txt(stage_folder, mongodb_uri, tmp_path_factory):
    """The stage run as a program, its --files_dir holding hello.txt: one for each stage,
    shared by the cases below, as each sends two requests and none stores, changes or stops
    anything. (The test above runs one of its own: it stores files, with the options it checks.)"""
    files_dir = tmp_path_factory.mktemp("files_dir")
    (files_dir / "hello.txt").write_text("hello")
    with database_of_its_own(mongodb_uri) as db_name, StageLauncher(stage_folder, mongodb_uri, db_name) as launcher:
        yield launcher(f"--files_dir={files_dir}")


@pytest.mark.parametrize("method, path", [("GET", "/"), ("POST", "/"), ("GET", "/files/hello.txt")])
async def test_a_big_body_sent_where_nothing_is_uploaded_is_refused_unread(running_with_hello_txt, method, path):
    # Handlers that do not stream read a body whole, into memory, before they run.
    async with RawConnection(running_with_hello_txt.url) as connection:
        await connection.send_headers(method, path, ["Content-Length: 100000000"])  # and no byte of it
        status, _, _ = await connection.response()
    assert status == 400  # Tornado's own answer, from the Content-Length alone
    async with RawConnection(running_with_hello_txt.url) as connection:
        status, _, body = await connection.request("GET", path if method == "GET" else "/", b"a small body")
    assert status == 200  # a small one is read, and the request served
