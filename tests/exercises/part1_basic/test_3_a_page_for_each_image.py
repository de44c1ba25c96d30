"""Part 1, exercise 3: a page for each image.

GET /imgs/<id>/page shows one image, with a template of its own, image.html, that
extends base.html: the file name in an <h1>, the image (<img src="/imgs/<id>">), and
<p class="details"> with its size in bytes and its upload date in UTC, to the minute:
"614400 bytes, uploaded 2026-11-25 16:42 UTC". An id that is not valid, or that no
image has, gets the same 404 page as /imgs/<id>. On the home page, each image's name
links to its page.
"""

import re

from bson import ObjectId

from coursekit.clients import answer, error_message
from coursekit.images import image_bytes

RUNS_ON = ["part1_basic"]


async def upload(client, name, data):
    """Upload an image as the form does; its fs.files document."""
    response = await client.upload(data, name)
    assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"
    return await client.db.fs.files.find_one({"filename": name})


async def test_an_image_has_a_page_with_its_name_size_and_date(client):
    data = image_bytes(size=(300, 200))
    stored = await upload(client, "photo.png", data)
    response = await client.fetch(f"/imgs/{stored['_id']}/page")
    assert response.code == 200, (
        f"GET /imgs/<id>/page should show the image's page (200); it answered {answer(response)}")
    page = response.body.decode()
    assert "<header>" in page, "the page should extend base.html: its <header> is missing"
    assert re.search(r"<h1>\s*photo\.png\s*</h1>", page), "the page should give the file's name in an <h1>"
    assert re.search(rf'<img [^>]*src="/imgs/{stored["_id"]}"', page), (
        f'the page should show the image: <img src="/imgs/{stored["_id"]}" ...>')
    details = re.search(r'<p class="details">(.*?)</p>', page, re.S)
    assert details, 'the page should have a <p class="details"> with the size and the upload date'
    expected = f"{len(data)} bytes, uploaded {stored['uploadDate']:%Y-%m-%d %H:%M} UTC"
    shown = " ".join(details.group(1).split())
    assert shown == expected, f'the details should read "{expected}" (from fs.files); they read "{shown}"'


async def test_no_such_image_no_page(client):
    await upload(client, "photo.png", image_bytes())
    for path, words in [("/imgs/not-an-id/page", "that id is not valid"),
                        (f"/imgs/{ObjectId()}/page", "no image with that id")]:
        response = await client.fetch(path)
        message = error_message(response.body.decode())
        assert response.code == 404 and words in (message or ""), (
            f'GET {path} should get the 404 page of /imgs/<id>, "...{words}."; it got {answer(response)}')


async def test_the_home_page_links_each_name_to_its_page(client):
    stored = await upload(client, "photo.png", image_bytes())
    page = (await client.fetch("/")).body.decode()
    assert f'href="/imgs/{stored["_id"]}/page"' in page, (
        "on the home page, the image's name should link to its page, /imgs/<id>/page")
