"""Part 1, exercise 1: delete an image.

Each image on the home page gets a button that deletes it:
<form class="delete" method="post" action="/imgs/<id>/delete">. POST /imgs/<id>/delete
deletes the file from GridFS, its fs.files document and every one of its chunks, and
redirects to / (302). An id that is not valid, or that no image has, gets the 404 page
of /imgs/<id>.
"""

import os

from bson import ObjectId

from coursekit.clients import answer, error_message
from coursekit.images import image_bytes

RUNS_ON = ["part1_basic"]


async def upload(client, name, data):
    """Upload an image as the form does; its id."""
    response = await client.upload(data, name)
    assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"
    return (await client.db.fs.files.find_one({"filename": name}))["_id"]


async def test_deleting_an_image_leaves_nothing_of_it(client):
    big = await upload(client, "big.png", os.urandom(600_000))  # three chunks of 255 KiB
    small = await upload(client, "small.png", image_bytes())
    page = (await client.fetch("/")).body.decode()
    for image_id in (big, small):
        assert f'<form class="delete" method="post" action="/imgs/{image_id}/delete">' in page, (
            f'the home page should have a delete button for each image: <form class="delete" method="post" '
            f'action="/imgs/{image_id}/delete">')

    response = await client.fetch(f"/imgs/{big}/delete", "POST", body=b"")
    assert response.code == 302 and response.headers.get("Location") == "/", (
        f"POST /imgs/<id>/delete should delete the image and redirect to / (302); it answered {answer(response)}")
    assert await client.db.fs.files.count_documents({"_id": big}) == 0, "its fs.files document should be gone"
    assert await client.db.fs.chunks.count_documents({"files_id": big}) == 0, "all its chunks should be gone"
    assert (await client.fetch(f"/imgs/{big}")).code == 404, "GET /imgs/<id> of a deleted image should be a 404"
    assert [name for _, name in await client.listed()] == ["small.png"], "the other image should still be there"
    assert await client.db.fs.chunks.count_documents({"files_id": small}) == 1, "the other image's chunk too"


async def test_deleting_no_image_is_a_404(client):
    await upload(client, "photo.png", image_bytes())
    for path, words in [("/imgs/not-an-id/delete", "that id is not valid"),
                        (f"/imgs/{ObjectId()}/delete", "no image with that id")]:
        response = await client.fetch(path, "POST", body=b"")
        message = error_message(response.body.decode())
        assert response.code == 404 and words in (message or ""), (
            f'POST {path} should get the 404 page of /imgs/<id>, "...{words}."; it got {answer(response)}')
    assert await client.db.fs.files.count_documents({}) == 1, "and delete nothing"
