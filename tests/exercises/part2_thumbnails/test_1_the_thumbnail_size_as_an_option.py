"""Part 2, exercise 1: the thumbnail size as an option.

`--thumbnail_size=N` (128 by default) makes new thumbnails fit in N×N pixels: their
longer side is N, or the image's own if it is smaller (Pillow's thumbnail() never
enlarges). `--help` lists the option. N may be 16 to 1024: any other is refused before
the stage starts, with one line, `error: ...`, that names thumbnail_size and its
bounds, 16 and 1024, and a non-zero exit status.
"""

import io

from mirakuru.exceptions import ExecutorError
from PIL import Image

from coursekit.clients import Client, answer
from coursekit.images import image_bytes

RUNS_ON = ["part2_thumbnails"]


def last_line(output):
    return (output.strip().splitlines() or ["nothing"])[-1]


async def thumbnail_side(program, db):
    """Upload a 300×200 image to the running stage; the longer side of its thumbnail."""
    client = Client(program.url, db)
    response = await client.upload(image_bytes(size=(300, 200)), "photo.png")
    assert response.code == 302, f"uploading an image should work as before (302); it answered {answer(response)}"
    newest = await db.imgs.find_one(sort=[("uploadDate", -1)])
    thumbnail = await client.fetch(f"/imgs/{newest['_id']}/thumb")
    return max(Image.open(io.BytesIO(thumbnail.body)).size)


async def test_thumbnails_fit_the_size_asked_for(program, db):
    for args, side in [(["--thumbnail_size=16"], 16), (["--thumbnail_size=1024"], 300), ([], 128)]:
        command = " ".join(["python app.py", *args])
        try:
            running = program(*args)  # once it listens
        except ExecutorError as error:  # it stopped, or never listened
            said = last_line(error.executor.output())
            raise AssertionError(f"`{command}` should start the stage; it stopped, saying: {said}") from None
        found = await thumbnail_side(running, db)
        running.stop()
        assert found == side, (
            f"with `{command}`, a 300×200 image's thumbnail should be {side} pixels wide; it is {found}")


def test_help_lists_the_option(program):
    _, output = program.run("--help")
    assert "--thumbnail-size" in output, "`python app.py --help` should list --thumbnail_size"


def test_a_size_out_of_bounds_is_refused_in_one_line(program):
    for size in (15, 1025):
        status, output = program.run(f"--thumbnail_size={size}", timeout=15)
        lines = output.strip().splitlines()
        assert status != 0, f"`python app.py --thumbnail_size={size}` should not start the stage"
        assert len(lines) == 1 and lines[0].startswith("error: ") and all(
            word in lines[0] for word in ("thumbnail_size", "16", "1024")), (
            f"`python app.py --thumbnail_size={size}` should print one line, `error: ...`, naming thumbnail_size "
            f"and its bounds, 16 and 1024; it printed {len(lines)} lines, the last: {last_line(output)}")
