"""Part 3's program, as a learner runs it: the options it adds, --max_upload_size and
--files_dir, taken from the command line and obeyed."""

from coursekit.clients import Client, error_message

RUNS_ON = ["part3_streaming", "part4_production"]  # part 4 runs the same code for real


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
