"""What part 2 adds: options, XSRF protection, thumbnails made off the event loop,
uploads checked by Pillow, and the original and thumbnail saved together or not at all.

Each test gets a stage and a database of its own: it counts what was stored or
listed, changes the app's settings or options, or runs the stage as a program."""

import asyncio
import io
import re
import threading
from functools import cache

import pytest
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from PIL import ExifTags, Image
from tornado.httpclient import AsyncHTTPClient

from coursekit.clients import Client, error_message, multipart
from coursekit.executors import InlineExecutor
from coursekit.images import encoded, image_bytes
from coursekit.processes import free_port
from coursekit.stages import ORIGINAL_PATHS

RUNS_ON = ["part2_thumbnails"]

GALLERY_ITEM = re.compile(r'<a class="original" href="([^"]+)">\s*<img src="([^"]+)" alt="([^"]*)"')
NOTHING = {"fs.files": 0, "fs.chunks": 0, "imgs": 0}
A_FORM = {"file": ("a.png", image_bytes(), "image/png")}


# --- Helpers ---


def noise(size=(300, 200)):
    """An image with detail everywhere, so that any cut through its file loses pixels."""
    return Image.effect_noise(size, 50).convert("RGB")


async def gallery(client):
    """(original href, thumbnail src, name) for each upload on the home page."""
    response = await client.fetch("/")
    assert response.code == 200
    return GALLERY_ITEM.findall(response.body.decode())


async def upload_and_get_thumbnail(client, data, filename="image.png", content_type="image/png"):
    response = await client.upload(data, filename, content_type)
    assert response.code == 302, error_message(response.body.decode())
    [(_, src, _)] = await gallery(client)
    thumbnail = await client.fetch(src)
    assert thumbnail.code == 200
    assert thumbnail.headers["Content-Type"] == "image/png"
    assert thumbnail.headers["X-Content-Type-Options"] == "nosniff"
    image = Image.open(io.BytesIO(thumbnail.body))
    assert image.format == "PNG"
    return image


# --- Options ---


def test_help_lists_the_options_with_defaults_from_the_environment(program):
    status, output = program.run("--help", env={"PORT": "8123", "MONGODB_URI": "mongodb://db.example:27017",
                                                "MONGODB_DB": "pictures", "COOKIE_SECRET": "never-print-me"})
    assert status == 0
    text = " ".join(output.split())  # --help wraps long lines
    for flag in ("--port", "--db-uri", "--db-name", "--debug", "--config", "--cookie-secret"):
        assert flag in text
    assert "(default 8123)" in text
    assert "(default mongodb://db.example:27017)" in text
    assert "(default pictures)" in text
    assert "never-print-me" not in text


async def test_the_environment_gives_the_defaults(program, db):
    # PORT, MONGODB_URI and MONGODB_DB name the port it listens on and the test's database.
    client = Client(program().url)
    assert (await client.upload(image_bytes())).code == 302
    assert await db.imgs.count_documents({}) == 1


async def test_a_config_file_sets_options_over_the_environment(tmp_path, program, db):
    port = free_port()
    config = tmp_path / "part2.conf"
    config.write_text(f"port = {port}\ndb_name = {db.name!r}\n")
    client = Client(program(f"--config={config}", port=port,
                            env={"PORT": str(free_port()), "MONGODB_DB": "not_this_one"}).url)
    assert (await client.upload(image_bytes())).code == 302
    assert await db.imgs.count_documents({}) == 1


async def test_an_option_after_the_config_file_wins(tmp_path, program):
    port = free_port()
    config = tmp_path / "part2.conf"
    config.write_text(f"port = {free_port()}\n")
    client = Client(program(f"--config={config}", f"--port={port}", port=port, env={"PORT": None}).url)
    assert (await client.fetch("/")).code == 200


@pytest.mark.parametrize("args, message", [
    (["--port=eighty"], "error: invalid literal for int() with base 10: 'eighty'"),
    (["--config=/no/such/file.conf"], "error: [Errno 2] No such file or directory: '/no/such/file.conf'"),
    (["--colour=blue"], "error: no such option: --colour (--help lists them)"),
])
def test_a_bad_option_gets_one_clear_line(program, args, message):
    status, output = program.run(*args)
    assert status == 1
    assert output.strip().splitlines()[-1] == message
    assert "Traceback" not in output


async def test_the_cookie_secret_is_generated_unless_given(stage_app, db):
    first, second = stage_app.make_app(db), stage_app.make_app(db)
    assert first.settings["cookie_secret"] != second.settings["cookie_secret"]
    assert len(first.settings["cookie_secret"]) >= 32
    assert stage_app.make_app(db, cookie_secret="from the config").settings["cookie_secret"] == "from the config"


# --- XSRF ---


async def test_the_form_carries_the_xsrf_token(serve):
    client = await serve(visit=False)
    response = await client.visit()
    assert re.search(r'<form[^>]*>\s*<input type="hidden" name="_xsrf" value="[^"]+"', response.body.decode())
    assert "_xsrf" in client.cookies


@pytest.mark.parametrize("visitor", ["no cookie, no token", "a cookie, no token", "someone else's token"])
async def test_a_post_without_a_valid_token_gets_403_and_stores_nothing(client, db, visitor):
    forger = Client(client.base_url, db)
    headers = {}
    if visitor != "no cookie, no token":
        await forger.visit()
        headers["X-XSRFToken"] = ""
    if visitor == "someone else's token":
        headers["X-XSRFToken"] = client.cookies["_xsrf"]
    body, form_type = multipart(A_FORM)
    response = await forger.fetch(client.form_action, "POST", body, {**headers, "Content-Type": form_type})
    assert response.code == 403
    assert "xsrf" in error_message(response.body.decode()).lower()
    assert await client.stored() == NOTHING


async def test_a_script_sending_the_header_is_accepted(client):
    response = await client.upload(image_bytes(), "a.png", headers={"X-XSRFToken": client.cookies["_xsrf"]})
    assert response.code == 302
    assert await client.db.imgs.count_documents({}) == 1


async def test_a_form_sending_the_field_is_accepted(client):
    page = (await client.fetch("/")).body.decode()
    [token] = re.findall(r'name="_xsrf" value="([^"]+)"', page)
    body, form_type = multipart([("_xsrf", token), *A_FORM.items()])
    # As a browser posts the form: the cookie and the form's field, no header (which
    # the Client would add).
    response = await AsyncHTTPClient().fetch(
        client.base_url + client.form_action, method="POST", body=body, follow_redirects=False, raise_error=False,
        headers={"Content-Type": form_type, "Cookie": f"_xsrf={client.cookies['_xsrf']}"},
    )
    assert response.code == 302
    assert await client.db.imgs.count_documents({}) == 1


# --- Thumbnails ---


def palette_with_transparency():
    image = Image.new("P", (300, 200), 0)
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.paste(1, (150, 0, 300, 200))
    return encoded(image, "PNG", transparency=0)  # colour 0, the left half, is see-through


def cmyk_jpeg():
    return encoded(Image.new("CMYK", (300, 200), (255, 0, 0, 0)), "JPEG")  # cyan


def exif_rotated_jpeg():
    """Stored 200x100, red left and blue right; EXIF says: turn a quarter clockwise to show."""
    image = Image.new("RGB", (200, 100), "red")
    image.paste("blue", (100, 0, 200, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return encoded(image, "JPEG", exif=exif)


# (how to make the upload, the thumbnail's size and mode, a pixel of it and its colour)
THUMBNAIL_CASES = {
    "RGB JPEG, 24 megapixels": (lambda: encoded(Image.new("RGB", (6000, 4000), "orange"), "JPEG"),
                                (128, 85), "RGB", (64, 40), (255, 165, 0)),
    "palette PNG with transparency": (palette_with_transparency, (128, 85), "RGBA", (10, 40), 0),
    "grey and alpha PNG": (lambda: image_bytes(mode="LA", size=(300, 200), color=(100, 128)),
                           (128, 85), "LA", (64, 40), (100, 128)),
    "RGBA WebP": (lambda: image_bytes("WEBP", mode="RGBA", size=(200, 300), color=(0, 128, 0, 128)),
                  (85, 128), "RGBA", (40, 64), (0, 128, 0, 128)),
    "CMYK JPEG": (cmyk_jpeg, (128, 85), "RGB", (64, 40), (0, 255, 255)),
    "16-bit grey PNG": (lambda: image_bytes(mode="I;16", size=(300, 200), color=40000),
                        (128, 85), "L", (64, 40), 40000 // 256),
    "grey PNG with a transparent grey": (lambda: encoded(Image.new("L", (300, 200), 7), "PNG", transparency=7),
                                         (128, 85), "RGBA", (64, 40), 0),
    "black and white PNG": (lambda: image_bytes(mode="1", size=(300, 200), color=1),
                            (128, 85), "RGB", (64, 40), (255, 255, 255)),
    "GIF": (lambda: image_bytes("GIF", size=(300, 200), color="blue"), (128, 85), "RGB", (64, 40), (0, 0, 255)),
    "small PNG, not enlarged": (lambda: image_bytes(size=(40, 30)), (40, 30), "RGB", (20, 15), (255, 0, 0)),
}


def close_to(actual, expected, tolerance=6):
    """Equal but for the rounding of lossy formats and resampling."""
    if isinstance(expected, int):
        actual, expected = [actual], [expected]
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


@pytest.mark.parametrize("case", THUMBNAIL_CASES)
def test_thumbnail_fits_128_and_is_a_png_for_each_kind_of_image(stage_code, case):
    # make_thumbnail() alone, with no server: the tests below upload images and fetch
    # their thumbnails over HTTP (upload_and_get_thumbnail), served as PNGs.
    make, size, mode, pixel, colour = THUMBNAIL_CASES[case]
    *_, png = stage_code.make_thumbnail(make())
    thumbnail = Image.open(io.BytesIO(png))
    assert thumbnail.format == "PNG"
    assert thumbnail.size == size
    assert thumbnail.mode == mode
    value = thumbnail.getpixel(pixel)
    if mode == "RGBA" and colour == 0:
        assert value[3] == 0  # transparent stays transparent
    else:
        assert close_to(value, colour), value


async def test_the_thumbnail_is_turned_as_exif_says(client):
    thumbnail = await upload_and_get_thumbnail(client, exif_rotated_jpeg(), "turned.jpg", "image/jpeg")
    assert thumbnail.size == (64, 128)
    assert close_to(thumbnail.getpixel((32, 10)), (255, 0, 0), tolerance=40)  # the left side, now on top
    assert close_to(thumbnail.getpixel((32, 118)), (0, 0, 255), tolerance=40)
    image = await client.db.imgs.find_one()
    assert (image["width"], image["height"]) == (100, 200)  # as shown, not as stored


async def test_a_camera_jpeg_with_a_second_picture_is_served_as_jpeg(client):
    mpo = encoded(Image.new("RGB", (300, 200), "red"), "MPO", save_all=True,
                  append_images=[Image.new("RGB", (300, 200), "blue")])
    thumbnail = await upload_and_get_thumbnail(client, mpo, "stereo.jpg", "image/jpeg")
    assert thumbnail.size == (128, 85)
    [(href, _, _)] = await gallery(client)
    assert (await client.fetch(href)).headers["Content-Type"] == "image/jpeg"


async def test_the_page_links_each_thumbnail_to_its_original(client):
    await client.upload(image_bytes(size=(300, 200)), "first.png")
    await client.upload(image_bytes("JPEG", size=(200, 300)), "second.jpg", "image/jpeg")
    items = await gallery(client)
    assert [name for _, _, name in items] == ["second.jpg", "first.png"]
    for (href, src, _), size in zip(items, [(200, 300), (300, 200)]):
        image_id = href.split("/")[2]
        assert (href, src) == (f"/imgs/{image_id}/orig", f"/imgs/{image_id}/thumb")
        original = Image.open(io.BytesIO((await client.fetch(href)).body))
        assert original.size == size


async def test_the_imgs_document_links_the_two_files(client):
    data = image_bytes("JPEG", size=(300, 200))
    await client.upload(data, "photo.jpg", "image/png")  # the claim is wrong: Pillow knows better
    image = await client.db.imgs.find_one()
    assert {key: image[key] for key in ("filename", "contentType", "length", "width", "height")} == {
        "filename": "photo.jpg", "contentType": "image/jpeg", "length": len(data), "width": 300, "height": 200,
    }
    original = await client.db["fs.files"].find_one({"_id": image["original"]})
    thumbnail = await client.db["fs.files"].find_one({"_id": image["thumbnail"]})
    assert original["length"] == len(data) and original["metadata"] == {"contentType": "image/jpeg"}
    assert thumbnail["metadata"] == {"contentType": "image/png"}
    assert image["uploadDate"] >= original["uploadDate"]


@pytest.mark.parametrize("data, claimed, served", [
    (image_bytes("PNG"), "image/jpeg", "image/png"),
    (image_bytes("GIF"), "text/html", "image/gif"),  # part 1 refused the claim with a 415
])
async def test_the_type_served_is_the_one_pillow_detected(client, data, claimed, served):
    assert (await client.upload(data, "picture", claimed)).code == 302
    [(href, _, _)] = await gallery(client)
    response = await client.fetch(href)
    assert response.headers["Content-Type"] == served
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.body == data


async def test_an_image_whose_file_was_deleted_gets_404(client, stage):
    await client.upload(image_bytes())
    image = await client.db.imgs.find_one()
    await MotorGridFSBucket(client.db).delete(image["original"])
    response = await client.fetch(ORIGINAL_PATHS[stage].format(image["_id"]))
    assert response.code == 404
    assert "missing" in error_message(response.body.decode())
    assert (await client.fetch(f"/imgs/{image['_id']}/thumb")).code == 200


# --- Off the event loop ---


async def test_thumbnails_are_made_on_the_thumbnail_threads(client, stage_code, monkeypatch):
    threads = []

    def make_thumbnail(data):
        threads.append(threading.current_thread().name)
        return real_make_thumbnail(data)

    real_make_thumbnail = stage_code.make_thumbnail
    monkeypatch.setattr(stage_code.module_of("MainHandler"), "make_thumbnail", make_thumbnail)  # where post() finds it
    assert (await client.upload(image_bytes())).code == 302
    assert len(threads) == 1 and threads[0].startswith("thumbnail")


async def test_the_loop_serves_other_requests_while_a_thumbnail_is_made(client, stage_code, monkeypatch):
    started, finish = threading.Event(), threading.Event()

    def slow_make_thumbnail(data):
        started.set()
        finish.wait(30)  # as long as a huge photo would take, or longer
        return real_make_thumbnail(data)

    real_make_thumbnail = stage_code.make_thumbnail
    monkeypatch.setattr(stage_code.module_of("MainHandler"), "make_thumbnail", slow_make_thumbnail)
    upload = asyncio.ensure_future(client.upload(image_bytes()))
    assert await asyncio.to_thread(started.wait, 30)
    assert (await client.fetch("/")).code == 200  # served while the thumbnail is still in the making
    assert not upload.done()
    finish.set()
    assert (await upload).code == 302


async def test_with_an_inline_executor_thumbnails_are_made_on_the_loop(serve, stage_code, monkeypatch):
    threads = []

    def make_thumbnail(data):
        threads.append(threading.current_thread())
        return real_make_thumbnail(data)

    real_make_thumbnail = stage_code.make_thumbnail
    monkeypatch.setattr(stage_code.module_of("MainHandler"), "make_thumbnail", make_thumbnail)
    client = await serve(thumbnail_executor=InlineExecutor())
    thumbnail = await upload_and_get_thumbnail(client, image_bytes(size=(300, 200)))
    assert threads == [threading.main_thread()]
    assert thumbnail.size == (128, 85)


# --- Bad uploads: a 400 with a clear message, and nothing stored ---


@cache
def bomb(pixels):
    """A real PNG of about `pixels` pixels, all black: a few kilobytes that decode to a lot."""
    side = int(pixels**0.5) + 1
    return encoded(Image.new("1", (side, side)), "PNG")


BAD_UPLOADS = {
    "text": (lambda: b"just some text, no image at all", "not a PNG, JPEG, GIF or WebP image"),
    "SVG": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "not a PNG, JPEG, GIF or WebP image"),
    "BMP": (lambda: image_bytes("BMP"), "not a PNG, JPEG, GIF or WebP image"),
    "truncated JPEG": (lambda: (lambda data: data[: len(data) // 2])(encoded(noise(), "JPEG")), "truncated"),
    "truncated PNG": (lambda: (lambda data: data[: len(data) // 2])(encoded(noise(), "PNG")), "truncated"),
    "bomb, over twice Pillow's limit": (lambda: bomb(2 * Image.MAX_IMAGE_PIXELS + 1), "too many pixels"),
    "bomb, over Pillow's limit": (lambda: bomb(Image.MAX_IMAGE_PIXELS + 1), "too many pixels"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", BAD_UPLOADS)
async def test_a_bad_upload_gets_400_and_stores_nothing(client, case):
    make, message = BAD_UPLOADS[case]
    response = await client.upload(make(), "upload.png", "image/png")
    assert response.code == 400
    assert message in error_message(response.body.decode())
    assert await client.stored() == NOTHING


def test_the_bombs_are_what_they_claim():
    for pixels in (Image.MAX_IMAGE_PIXELS + 1, 2 * Image.MAX_IMAGE_PIXELS + 1):
        data = bomb(pixels)
        # Width and height from the PNG's header, without Pillow's checks
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert pixels <= width * height < pixels * 1.001
        assert len(data) < 100_000


# --- Saving both files, or neither ---


class FailingUploads:
    """Part 2's GridFS bucket, but the uploads named in `failing` ("original",
    "thumbnail") go to a server that is not there, and fail as in an outage."""

    def __init__(self, bucket, unreachable_db, original, failing=(), deletes_fail=False):
        self.bucket, self.unreachable = bucket, MotorGridFSBucket(unreachable_db)
        self.original, self.failing, self.deletes_fail = original, failing, deletes_fail
        self.stored = []

    async def upload_from_stream(self, filename, source, **kwargs):
        kind = "original" if source == self.original else "thumbnail"
        if kind in self.failing:
            return await self.unreachable.upload_from_stream(filename, source, **kwargs)
        file_id = await self.bucket.upload_from_stream(filename, source, **kwargs)
        self.stored.append(file_id)
        return file_id

    async def delete(self, file_id):
        await (self.unreachable if self.deletes_fail else self.bucket).delete(file_id)

    def __getattr__(self, name):
        return getattr(self.bucket, name)


@pytest.fixture
def unreachable_db():
    """A database on a server that is not there: its operations fail, quickly."""
    client = MotorClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=300)
    yield client.unreachable
    client.close()


@pytest.mark.parametrize("failing", [("original",), ("thumbnail",), ("original", "thumbnail")])
async def test_when_a_save_fails_nothing_is_left_behind(client, unreachable_db, failing):
    data = image_bytes(size=(300, 200))
    settings = client.app.settings
    uploads = settings["fs"] = FailingUploads(settings["fs"], unreachable_db, data, failing)
    response = await client.upload(data)
    assert response.code == 503
    assert "not stored" in error_message(response.body.decode())
    assert len(uploads.stored) == 2 - len(failing)  # the other save happened...
    assert await client.stored() == NOTHING  # ...and was undone


async def test_when_the_document_cannot_be_saved_the_files_are_deleted(client, unreachable_db):
    data = image_bytes(size=(300, 200))
    settings = client.app.settings
    uploads = settings["fs"] = FailingUploads(settings["fs"], unreachable_db, data)
    settings["db"] = unreachable_db  # the client has its XSRF cookie, from while the database answered
    response = await client.upload(data)
    assert response.code == 503
    assert len(uploads.stored) == 2
    assert await client.stored() == NOTHING


async def test_files_that_cannot_be_deleted_are_logged(client, unreachable_db, caplog):
    data = image_bytes(size=(300, 200))
    settings = client.app.settings
    settings["fs"] = FailingUploads(settings["fs"], unreachable_db, data, ["thumbnail"], deletes_fail=True)
    response = await client.upload(data)
    assert response.code == 503
    [record] = [record for record in caplog.records if "left behind" in record.getMessage()]
    assert record.levelname == "ERROR"
    assert await client.db["fs.files"].count_documents({}) == 1  # the database was down: it is still there
