"""Part 1, exercise 4: older uploads, and the index their query needs.

When there are older images than the 20 listed, the home page ends with
<a class="older" href="/?before=ID">Older uploads</a>, ID being the last one listed.
/?before=ID lists the 20 images that come after that one in the home page's order
(newest first), with a link of its own if there are more. An ID that is not valid,
or that no image has, gets the 404 page of /imgs/<id>. When the stage starts, before
it listens, it creates the index that this sort needs: [("uploadDate", -1), ("_id", -1)].
"""

import re

from bson import ObjectId
from mirakuru.exceptions import ExecutorError

from coursekit.clients import GalleryParser, answer, error_message
from coursekit.images import image_bytes

RUNS_ON = ["part1_basic"]

OLDER_LINK = re.compile(r'<a class="older" href="([^"]+)">')


async def page(client, path):
    """(names listed, the older uploads' link or None) of a page."""
    response = await client.fetch(path)
    assert response.code == 200, f"GET {path} should list uploads (200); it answered {answer(response)}"
    html = response.body.decode()
    parser = GalleryParser()
    parser.feed(html)
    link = OLDER_LINK.search(html)
    return [name for _, name in parser.items], link and link.group(1).replace("&amp;", "&")


async def upload(client, names):
    for name in names:
        response = await client.upload(image_bytes(), name)
        assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"


async def test_older_uploads_twenty_at_a_time(client):
    await upload(client, [f"img{n:02}.png" for n in range(1, 41)])  # 40: two full pages
    first, older = await page(client, "/")
    assert first == [f"img{n:02}.png" for n in range(40, 20, -1)], "the home page lists the 20 newest, as before"
    assert older, 'with more than 20 images, the home page should end with <a class="older" href="/?before=ID">'
    last_listed = await client.db.fs.files.find_one({"filename": "img21.png"})
    assert older == f"/?before={last_listed['_id']}", (
        f"the link should name the last image listed: /?before={last_listed['_id']}; it is {older}")
    second, none = await page(client, older)
    assert second == [f"img{n:02}.png" for n in range(20, 0, -1)], (
        f"{older} should list the 20 images after the last one of the home page, newest first; it lists {second}")
    assert none is None, "the last 20 images have no older ones: their page should have no link"

    await upload(client, ["img41.png", "img42.png"])
    _, older = await page(client, "/")
    second, older = await page(client, older)
    assert second == [f"img{n:02}.png" for n in range(22, 2, -1)] and older, (
        "with 42 images, the second page should list the 21st to the 40th newest, and link to the rest")
    third, none = await page(client, older)
    assert third == ["img02.png", "img01.png"] and none is None, (
        f"the third page of 42 images should list the last 2 and have no link; it lists {third}")


async def test_a_bad_before_is_a_404(client):
    await upload(client, [f"img{n:02}.png" for n in range(21)])
    for query, words in [("?before=not-an-id", "that id is not valid"),
                         (f"?before={ObjectId()}", "no image with that id")]:
        response = await client.fetch(f"/{query}")
        message = error_message(response.body.decode())
        assert response.code == 404 and words in (message or ""), (
            f'GET /{query} should get the 404 page of /imgs/<id>, "...{words}."; it got {answer(response)}')


async def test_the_index_is_made_at_start_up(program, db):
    try:
        program()  # once it listens
    except ExecutorError as error:  # it stopped, or never listened
        raise AssertionError(f"the stage should start; it printed:\n{error.executor.output()[-2000:]}") from None
    indexes = await db.fs.files.index_information()
    keys = [list(index["key"]) for index in indexes.values()]
    assert [("uploadDate", -1), ("_id", -1)] in keys, (
        f'when the stage starts, fs.files should have the index [("uploadDate", -1), ("_id", -1)]; it has {keys}')
