"""What part 3 does with each kind of file: any file is kept, but only an image that
Pillow decodes is shown as one, with a thumbnail made on the thumbnail threads from
the file read back from GridFS; everything else is a download, of a type no browser
runs, whatever its uploader claimed.

Everything goes over real HTTP to a real database. Each test gets a stage and a
database of its own: all upload, and most then find their files the only ones there,
or nothing stored."""

import io
import os
import re
import threading

import pytest
from PIL import Image

from coursekit.clients import error_message
from coursekit.executors import InlineExecutor
from coursekit.images import image_bytes
from coursekit.stages import ORIGINAL_PATHS

RUNS_ON = ["part3_streaming", "part4_production", "part5_live"]  # parts 4 and 5 run the same code for real


# --- Not images ---


@pytest.mark.parametrize("way", ["form", "put"])
@pytest.mark.parametrize("filename, content_type, data, served_as", [
    ("page.html", "text/html", b"<script>alert(document.cookie)</script>", "text/plain"),
    ("steal.js", "text/javascript", b"fetch('/upload/x', {method: 'PUT', body: document.cookie})", "text/plain"),
    ("site.css", "text/css", b"body { display: none }", "text/plain"),
    ("drawing.svg", "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
     "application/octet-stream"),
    ("fake.png", "image/png", b"<html><script>alert(1)</script></html>", "application/octet-stream"),
])
async def test_other_files_are_served_as_attachments_without_a_thumbnail(client, way, filename, content_type, data,
                                                                         served_as):
    if way == "form":
        assert (await client.upload(data, filename, content_type)).code == 302
    else:
        assert (await client.put(data, filename, {"Content-Type": content_type})).code == 201
    [(href, name)] = await client.listed()
    response = await client.fetch(href)
    assert response.body == data
    # Not the claimed type: one that no page of ours can run as a script or a style.
    assert response.headers["Content-Type"] == served_as
    claimed = await client.db.uploads.find_one()
    assert claimed["contentType"] == content_type  # kept, and listed
    assert f'<span class="type">{content_type}</span>' in (await client.fetch("/")).body.decode()
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].endswith("; sandbox")  # no script, even if displayed
    thumbnail = await client.fetch(href.replace("/orig", "/thumb"))
    assert thumbnail.code == 404
    assert "not an image" in error_message(thumbnail.body.decode())
    assert await client.db.fs.files.count_documents({}) == 1


async def test_the_listing_shows_name_size_and_type_of_files_and_a_badge(client):
    await client.put(os.urandom(1536), "notes.pdf")
    await client.put(image_bytes(size=(40, 30)), "photo.png")
    html = (await client.fetch("/")).body.decode()
    items = re.findall(r"<li[^>]*>(.*?)</li>", html, re.S)  # part 5 gives each its id
    assert len(items) == 2
    photo, notes = items
    assert 'class="original file"' in notes and "file.svg" in notes
    assert "notes.pdf" in notes and "1.5 KiB" in notes and "application/pdf" in notes
    assert "/thumb" in photo and "40 × 30" in photo and "image/png" in photo


async def test_attachment_names_are_given_safely(client):
    # The name, put in the URL, stored and sent back in the header: attachment() is
    # checked name by name in test_pure_functions.py.
    response = await client.put(b"text", "été 日本.txt")
    assert response.code == 201
    download = await client.fetch(response.headers["Location"])
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"_t_ __.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%20%E6%97%A5%E6%9C%AC.txt")


# --- Images: thumbnails from the file read back from GridFS ---


COLORS = {"RGB": "teal", "CMYK": (0, 200, 200, 0), "P": 7, "LA": (90, 200), "I;16": 40000,
          "RGBA": (0, 128, 128, 100)}


@pytest.mark.parametrize("way", ["form", "put"])
@pytest.mark.parametrize("mode, format", [("RGB", "JPEG"), ("CMYK", "JPEG"), ("P", "PNG"), ("LA", "PNG"),
                                          ("I;16", "PNG"), ("RGBA", "WEBP"), ("P", "GIF")])
async def test_images_get_a_thumbnail_and_are_served_inline(client, way, mode, format):
    data = image_bytes(format, size=(600, 300), mode=mode, color=COLORS[mode])
    content_type = f"image/{format.lower()}"
    if way == "form":
        assert (await client.upload(data, "picture", "application/octet-stream")).code == 302
    else:
        assert (await client.put(data, "picture")).code == 201  # no type, no extension
    [(href, _)] = await client.listed()
    original = await client.fetch(href)
    assert original.body == data
    assert original.headers["Content-Type"] == content_type  # what the image is, found by decoding it
    assert "Content-Disposition" not in original.headers
    thumbnail = await client.fetch(href.replace("/orig", "/thumb"))
    assert thumbnail.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(thumbnail.body)) as image:
        assert image.size == (128, 64)
    document = await client.db.uploads.find_one()
    assert (document["width"], document["height"], document["contentType"]) == (600, 300, content_type)


@pytest.mark.parametrize("way", ["form", "put"])
async def test_a_decompression_bomb_is_refused_and_nothing_stored(client, way):
    side = int((Image.MAX_IMAGE_PIXELS * 2.5) ** 0.5)  # only the header says so: the file is small
    data = image_bytes("PNG", size=(side, side), mode="1")
    response = await (client.upload(data, "bomb.png") if way == "form" else client.put(data, "bomb.png"))
    assert response.code == 400
    assert "too many pixels" in error_message(response.body.decode())
    assert await client.stored() == client.nothing_stored


async def test_a_truncated_image_is_refused_and_nothing_stored(client):
    data = image_bytes("JPEG", size=(400, 300))
    response = await client.put(data[: len(data) // 2], "cut.jpg")
    assert response.code == 400
    assert "truncated" in error_message(response.body.decode())
    assert await client.stored() == client.nothing_stored


async def test_a_file_that_only_begins_like_an_image_is_kept_as_a_file(client):
    data = b"\x89PNG\r\n\x1a\n" + b"not a PNG after all" * 100
    assert (await client.put(data, "odd.png")).code == 201
    [(href, _)] = await client.listed()
    response = await client.fetch(href)
    assert response.body == data
    assert response.headers["Content-Disposition"].startswith("attachment;")


async def test_a_photo_taken_sideways_is_listed_as_it_is_shown(client):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned a quarter
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), "olive").save(buffer, "JPEG", exif=exif)
    assert (await client.put(buffer.getvalue(), "sideways.jpg")).code == 201
    document = await client.db.uploads.find_one()
    assert (document["width"], document["height"]) == (200, 400)
    [(href, _)] = await client.listed()
    with Image.open(io.BytesIO((await client.fetch(href.replace("/orig", "/thumb"))).body)) as thumbnail:
        assert thumbnail.size == (64, 128)


async def test_thumbnails_are_made_on_the_thumbnail_threads(client, stage_code, monkeypatch):
    threads = []

    def make_thumbnail(*args):
        threads.append(threading.current_thread().name)
        return real_make_thumbnail(*args)

    real_make_thumbnail = stage_code.make_thumbnail
    # Patched where thumbnail_from_gridfs() finds it.
    monkeypatch.setattr(stage_code.module_of("thumbnail_from_gridfs"), "make_thumbnail", make_thumbnail)
    assert (await client.upload(image_bytes(), "threads.png")).code == 302
    assert len(threads) == 1 and threads[0].startswith("thumbnail"), (
        f"the thumbnail was made on {threads}, not on one of the thumbnail threads")
    assert (await client.db.uploads.find_one())["thumbnail"] is not None


async def test_thumbnails_can_be_made_on_the_event_loop(serve):
    client = await serve(thumbnail_executor=InlineExecutor())  # as part 2's bench/blocking.py does
    assert (await client.put(image_bytes(size=(256, 256)), "loop.png")).code == 201
    assert (await client.db.uploads.find_one())["width"] == 256


async def test_an_image_whose_file_was_deleted_is_a_404(client, stage):
    await client.put(image_bytes(), "gone.png")
    document = await client.db.uploads.find_one()
    await client.db.fs.files.delete_one({"_id": document["original"]})
    response = await client.fetch(ORIGINAL_PATHS[stage].format(document["_id"]))
    assert response.code == 404
    assert "missing from the database" in error_message(response.body.decode())
