"""Part 2, exercise 3: turn an image.

Each image on the home page gets a button that turns it a quarter turn clockwise:
<form class="rotate" method="post" action="/imgs/<id>/rotate">, with the XSRF field.
POST /imgs/<id>/rotate turns the original with Pillow, in its own format, and makes
its new thumbnail, both on the thumbnail threads; stores the two new files side by
side (asyncio.gather); points the image's `imgs` document at them, with its width and
height swapped; deletes the two old files; and redirects to / (302). The image keeps
its id. An id that is not valid, or that no image has: the 404 page of
/imgs/<id>/orig. Without the XSRF token: 403, and the image is as it was.
"""

import io

from bson import ObjectId
from PIL import Image

from coursekit.clients import Client, answer, error_message

RUNS_ON = ["part2_thumbnails"]

RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_colours(format):
    """A 300×200 image, red on its left half and blue on its right, in `format`."""
    image = Image.new("RGB", (300, 200), BLUE)
    image.paste(RED, (0, 0, 150, 200))
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


def near(colour, wanted):
    return all(abs(a - b) < 40 for a, b in zip(colour, wanted))


async def upload(client, data, name, content_type):
    response = await client.upload(data, name, content_type)
    assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"
    return await client.db.imgs.find_one({"filename": name})


async def test_turning_an_image(client):
    image = await upload(client, two_colours("PNG"), "photo.png", "image/png")
    path = f"/imgs/{image['_id']}/rotate"
    page = (await client.fetch("/")).body.decode()
    form = page.partition(f'<form class="rotate" method="post" action="{path}">')[2].partition("</form>")[0]
    assert 'name="_xsrf"' in form, (
        f'the home page should have a button to turn each image: <form class="rotate" method="post" action="{path}">, '
        "with the XSRF field ({% module xsrf_form_html() %})")

    refused = await Client(client.base_url, client.db).fetch(path, "POST", body=b"")  # no cookie, no token
    assert refused.code == 403, f"POST {path} without the XSRF token should be refused (403); it got {answer(refused)}"
    assert await client.db.imgs.find_one(image["_id"]) == image, "a refused POST should leave the image as it was"

    response = await client.fetch(path, "POST", body=b"")
    assert response.code == 302 and response.headers.get("Location") == "/", (
        f"POST {path} should turn the image and redirect to / (302); it answered {answer(response)}")
    turned = await client.db.imgs.find_one(image["_id"])
    assert (turned["width"], turned["height"]) == (200, 300), (
        f"the imgs document should now say 200 × 300; it says {turned['width']} × {turned['height']}")
    original = await client.fetch(f"/imgs/{image['_id']}/orig")
    picture = Image.open(io.BytesIO(original.body))
    assert picture.format == "PNG" and picture.size == (200, 300), (
        f"the original should now be a PNG of 200 × 300; it is a {picture.format} of {picture.size}")
    top, bottom = picture.convert("RGB").getpixel((100, 10)), picture.convert("RGB").getpixel((100, 290))
    assert near(top, RED) and near(bottom, BLUE), (
        "turned clockwise, the image's left half (red) should be at the top and its right half (blue) at the bottom")
    thumbnail = Image.open(io.BytesIO((await client.fetch(f"/imgs/{image['_id']}/thumb")).body))
    assert thumbnail.size == (85, 128), f"the new thumbnail should be 85 × 128; it is {thumbnail.size}"

    files = await client.db["fs.files"].distinct("_id")
    assert sorted(files) == sorted([turned["original"], turned["thumbnail"]]), (
        f"GridFS should hold the two new files and nothing else (the old ones deleted); it holds {len(files)} files")
    assert await client.db["fs.chunks"].count_documents({"files_id": {"$nin": files}}) == 0, (
        "no chunk of the old files should be left")


async def test_a_jpeg_stays_a_jpeg(client):
    image = await upload(client, two_colours("JPEG"), "photo.jpg", "image/jpeg")
    response = await client.fetch(f"/imgs/{image['_id']}/rotate", "POST", body=b"")
    assert response.code == 302, f"turning a JPEG should work too (302); it answered {answer(response)}"
    original = await client.fetch(f"/imgs/{image['_id']}/orig")
    picture = Image.open(io.BytesIO(original.body))
    assert original.headers["Content-Type"] == "image/jpeg" and picture.format == "JPEG", "a JPEG turned is a JPEG"
    assert picture.size == (200, 300), f"turned, the JPEG should be 200 × 300; it is {picture.size}"


async def test_turning_no_image_is_a_404(client):
    for path, words in [("/imgs/not-an-id/rotate", "that id is not valid"),
                        (f"/imgs/{ObjectId()}/rotate", "no image with that id")]:
        response = await client.fetch(path, "POST", body=b"")
        message = error_message(response.body.decode())
        assert response.code == 404 and words in (message or ""), (
            f'POST {path} should get the 404 page of /imgs/<id>/orig, "...{words}."; '
            f'it got {answer(response)}')
