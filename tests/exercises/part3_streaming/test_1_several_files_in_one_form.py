"""Part 3, exercise 1: several files in one form.

The form takes several files at once: <input type="file" name="file" multiple>. Each
`file` part of a form becomes an upload of its own, streamed into GridFS as it comes:
a GridFS file, an `uploads` document, a thumbnail if it is an image. --max_upload_size
bounds the form's files together. If one of them is refused (413 past the limit; 400
for a bad name or a damaged image), the answer is that error, and none of the form's
files is kept: no chunk, no file, no document. A client that leaves halfway leaves
nothing either. (static/upload.js sends the form as it is; make it check the sizes
of all the files.)
"""

import os

from coursekit.clients import RawConnection, answer, error_message, multipart
from coursekit.images import corrupt_png, image_bytes
from coursekit.waiting import eventually

RUNS_ON = ["part3_streaming"]

LIMIT = 100_000  # --max_upload_size, in bytes


async def post_form(client, files):
    """POST the home page's form with `files`, [(name, data, type)], each in a part named `file`."""
    assert client.form_action, "the home page should have its upload form, as before"
    body, content_type = multipart([("file", file) for file in files])
    return await client.fetch(client.form_action, "POST", body, {"Content-Type": content_type})


async def test_each_file_of_a_form_is_an_upload(serve):
    client = await serve(max_upload_size=LIMIT)
    page = (await client.fetch("/")).body.decode()
    assert 'name="file" multiple' in page, 'the form should take several files: <input type="file" name="file" multiple'
    files = [("red.png", image_bytes(color="red"), "image/png"), ("notes.txt", b"not an image\n", "text/plain"),
             ("blue.jpg", image_bytes("JPEG", color="blue"), "image/jpeg")]
    response = await post_form(client, files)
    assert response.code == 302, f"a form of three files should redirect to / (302); it answered {answer(response)}"
    names = sorted(name for _, name in await client.listed())
    assert names == ["blue.jpg", "notes.txt", "red.png"], f"each file of the form should be listed; listed: {names}"
    assert await client.stored() == {"fs.files": 5, "fs.chunks": 5, "uploads": 3}, (
        "three files and two thumbnails should be stored, with three uploads documents; "
        f"there are {await client.stored()}")
    for name, data, _ in files:
        upload = await client.db.uploads.find_one({"filename": name})
        original = await client.fetch(f"/uploads/{upload['_id']}/orig")
        assert original.body == data, f"{name} should come back as it was sent"

    # A client that leaves in the middle of the second file: nothing of the first is kept either.
    stored = await client.stored()
    client = await serve(max_upload_size=10_000_000)
    body, content_type = multipart([("file", ("first.bin", os.urandom(600_000), "application/octet-stream")),
                                    ("file", ("second.bin", os.urandom(600_000), "application/octet-stream"))])
    async with RawConnection(client) as connection:  # with the XSRF cookie and token
        await connection.send_headers("POST", client.form_action,
                                      [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"])
        await connection.send(body[:900_000])  # the first file, and half the second

        async def the_second_file_is_under_way():  # its first chunk is stored
            return (await client.stored())["fs.chunks"] >= stored["fs.chunks"] + 3

        await eventually(the_second_file_is_under_way)

    async def nothing_of_the_form_is_left():
        return await client.stored() == stored

    await eventually(nothing_of_the_form_is_left)


async def test_one_file_refused_none_kept(serve):
    client = await serve(max_upload_size=LIMIT)
    small = ("small.png", image_bytes(), "image/png")
    for files, status, words in [
        ([small, ("a.bin", os.urandom(40_000), "application/octet-stream"),
          ("b.bin", os.urandom(LIMIT - 40_000), "application/octet-stream")], 413, "too big"),
        ([small, ("damaged.png", corrupt_png(), "image/png"), ("after.txt", b"text", "text/plain")], 400, "damaged"),
        ([small, ("photo\u202egnp.exe", b"MZ", "application/octet-stream")], 400, "bidirectional"),
    ]:
        response = await post_form(client, files)
        message = error_message(response.body.decode())
        names = [name for name, _, _ in files]
        assert response.code == status and words in (message or ""), (
            f'a form of {names} should get a {status}, "...{words}..."; it got {answer(response)}')
        assert await client.stored() == {"fs.files": 0, "fs.chunks": 0, "uploads": 0}, (
            f"after a form of {names} is refused, none of its files should be kept; "
            f"there are {await client.stored()}")
