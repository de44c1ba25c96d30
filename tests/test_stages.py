"""The behaviour every stage keeps: each test runs once per stage, on a stage and a
database of its own, as all but one (the icon's) upload, count what is listed, or run
the stage as a program and stop it.

Bad input (404s, 400s and the rest) has its own catalogue: test_bad_input.py."""

import re
import signal

import pytest
from tornado.httpclient import AsyncHTTPClient

from coursekit.images import image_bytes
from coursekit.processes import free_port
from coursekit.stages import STAGES

RUNS_ON = STAGES  # every stage

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


async def test_home_page_shows_the_form_and_no_uploads(client):
    response = await client.fetch("/")
    assert response.code == 200
    html = response.body.decode()
    assert re.search(r'<form[^>]*enctype="multipart/form-data"', html)
    assert 'type="file" name="file"' in html
    assert await client.listed() == []


@pytest.mark.parametrize("format", IMAGE_FORMATS)
async def test_upload_round_trip_gives_identical_bytes_and_type(client, format):
    data = image_bytes(format)
    response = await client.upload(data, f"picture.{format.lower()}", IMAGE_FORMATS[format])
    assert response.code == 302
    assert response.headers["Location"] == "/"

    [(href, name)] = await client.listed()
    assert name == f"picture.{format.lower()}"
    image = await client.fetch(href)
    assert image.code == 200
    assert image.body == data
    assert image.headers["Content-Type"] == IMAGE_FORMATS[format]
    assert int(image.headers["Content-Length"]) == len(data)


async def test_head_answers_as_get_does_without_the_body(client):
    # HTTP requires HEAD wherever GET works: monitors, link checkers and `curl -I` use it.
    await client.upload(image_bytes(), "head.png")
    [(image_path, _)] = await client.listed()
    for path in ["/", image_path, "/nowhere"]:
        get, head = await client.fetch(path), await client.fetch(path, "HEAD")
        assert (head.code, head.body) == (get.code, b""), f"HEAD {path}: {head.code}, GET {path}: {get.code}"
        for name in ("Content-Type", "Content-Length"):
            assert head.headers.get(name) == get.headers.get(name), f"HEAD {path} gave another {name}"


async def test_home_page_lists_the_20_newest_newest_first(client):
    for n in range(21):
        response = await client.upload(image_bytes(color=(n * 10, 0, 0)), f"img{n:02}.png")
        assert response.code == 302
    names = [name for _, name in await client.listed()]
    assert names == [f"img{n:02}.png" for n in range(20, 0, -1)]


def test_each_stage_has_a_database_of_its_own_by_default(stage, program):
    # Nothing is written: the stage says at start which database it uses.
    app = program(env={"MONGODB_DB": None}).stop()
    assert f"database '{stage}'" in app.output()


async def test_the_site_has_an_icon(client):
    page = (await client.fetch("/")).body.decode()
    [href] = re.findall(r'<link rel="icon" href="([^"]+)">', page)
    for path in (href, "/favicon.ico"):  # where the page says, and where browsers look anyway
        response = await client.fetch(path)
        assert response.code == 200
        assert response.headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
        assert response.body[:4] == b"\0\0\1\0"  # an ICO file


@pytest.mark.takes(4)
def test_exits_with_one_clear_line_when_no_database_answers(program):
    unreachable = f"mongodb://127.0.0.1:{free_port()}"  # nothing listens there
    status, output = program.run(env={"MONGODB_URI": unreachable}, timeout=15)
    assert status != 0
    assert output.strip().splitlines() == [f"error: no MongoDB answers at {unreachable} (ServerSelectionTimeoutError)"]


async def test_runs_as_a_program_and_stops_cleanly_on_ctrl_c(program):
    app = program()
    response = await AsyncHTTPClient().fetch(app.url + "/")
    assert response.code == 200
    app.process.send_signal(signal.SIGINT)  # Ctrl+C
    assert app.process.wait(timeout=15) == 0
    assert "Traceback" not in app.output()


@pytest.mark.runs_on("part2_thumbnails", "part3_streaming", "part4_production", "part5_live")  # part 1: no options
@pytest.mark.parametrize("wrong, named", [("--bogus", "--bogus"), ("--bogus=1", "--bogus"),
                                          ("--db-nmae=x", "--db-nmae")])
def test_an_unknown_option_is_one_line_naming_it(program, wrong, named):
    status, output = program.run(wrong, timeout=15)
    assert status != 0
    assert output.strip().splitlines() == [f"error: no such option: {named} (--help lists them)"]


def test_exits_with_one_clear_line_when_the_port_is_taken(program):
    first = program()
    status, output = program.run(port=first.port, timeout=15)
    assert status != 0
    assert output.strip().endswith(f"error: cannot listen on port {first.port}: Address already in use")
