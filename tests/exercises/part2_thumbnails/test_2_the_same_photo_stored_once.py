"""Part 2, exercise 2: the same photo stored once.

Each upload's bytes are hashed with hashlib.sha256, on the thumbnail threads (hashing
a 20 MB photo is CPU work too), and the hex digest is kept in its `imgs` document as
`sha256`. Before storing an upload, look its digest up: bytes that are already stored
are not stored again (no new file, no new document), and the answer is the usual
redirect to / (302), so the home page lists the photo once.
"""

import hashlib

from coursekit.clients import answer
from coursekit.images import image_bytes

RUNS_ON = ["part2_thumbnails"]


async def upload(client, data, name):
    response = await client.upload(data, name)
    assert response.code == 302, f"uploading {name} should redirect to / (302); it answered {answer(response)}"


async def test_the_same_bytes_are_stored_once(client):
    photo = image_bytes(size=(300, 200), color="teal")
    await upload(client, photo, "photo.png")
    document = await client.db.imgs.find_one({"filename": "photo.png"})
    expected = hashlib.sha256(photo).hexdigest()
    assert document.get("sha256") == expected, (
        f'the imgs document should hold the SHA-256 of the bytes, in hex: "sha256": "{expected}"; '
        f"it holds {document.get('sha256')!r}")

    stored = await client.stored()
    await upload(client, photo, "the same photo again.png")
    assert await client.stored() == stored, (
        f"uploading the same bytes again should store nothing new: GridFS and imgs held {stored}, "
        f"and now hold {await client.stored()}")
    assert [name for _, name in await client.listed()] == ["photo.png"], "the home page should list the photo once"

    await upload(client, image_bytes(size=(300, 200), color="olive"), "another.png")
    assert [name for _, name in await client.listed()] == ["another.png", "photo.png"], (
        "another photo is stored as usual")
