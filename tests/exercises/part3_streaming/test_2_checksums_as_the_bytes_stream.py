"""Part 3, exercise 2: checksums as the bytes stream.

Every upload's SHA-256 is computed as its bytes come, a piece at a time
(hashlib.sha256().update(), never the whole file at once), and kept in its `uploads`
document as `sha256`, in hex. A PUT may send the digest it expects, as RFC 9530 says:
`Repr-Digest: sha-256=:<the 32 bytes in base64>:`. If the bytes that came do not
have it, the answer is 400, "...does not match...", and nothing is kept. A GET of an
original sends its digest the same way, in `Repr-Digest`, so a client can check what
it received.
"""

import base64
import hashlib
import os

from coursekit.clients import answer, error_message
from coursekit.images import image_bytes

RUNS_ON = ["part3_streaming"]


def repr_digest(data):
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


async def test_every_upload_has_its_digest(client):
    data = os.urandom(600_000)  # three chunks of 255 KiB
    response = await client.put(data, "data.bin")
    assert response.code == 201, f"PUT /upload/data.bin should store it (201); it answered {answer(response)}"
    document = await client.db.uploads.find_one({"filename": "data.bin"})
    expected = hashlib.sha256(data).hexdigest()
    assert document.get("sha256") == expected, (
        f'the uploads document should hold the SHA-256 of the file, in hex: "sha256": "{expected}"; '
        f"it holds {document.get('sha256')!r}")
    download = await client.fetch(f"/uploads/{document['_id']}/orig")
    assert download.headers.get("Repr-Digest") == repr_digest(data), (
        f"GET /uploads/<id>/orig should send Repr-Digest: {repr_digest(data)}; "
        f"it sends {download.headers.get('Repr-Digest')!r}")

    photo = image_bytes(size=(300, 200))
    response = await client.upload(photo, "photo.png")  # through the home page's form
    assert response.code == 302, f"a form's upload should work as before (302); it answered {answer(response)}"
    document = await client.db.uploads.find_one({"filename": "photo.png"})
    assert document.get("sha256") == hashlib.sha256(photo).hexdigest(), "a form's upload gets its sha256 too"


async def test_a_put_that_does_not_match_its_digest_is_refused(client):
    data = os.urandom(600_000)
    response = await client.put(data, "right.bin", {"Repr-Digest": repr_digest(data)})
    assert response.code == 201, f"a PUT whose Repr-Digest matches should be stored (201); it got {answer(response)}"
    stored = await client.stored()
    response = await client.put(data, "wrong.bin", {"Repr-Digest": repr_digest(data[:-1] + b"!")})
    message = error_message(response.body.decode())
    assert response.code == 400 and "does not match" in (message or ""), (
        f'a PUT whose bytes do not have its Repr-Digest should get a 400, "...does not match..."; '
        f'it got {answer(response)}')
    assert await client.stored() == stored, (
        f"and nothing of it should be kept: {stored} before, {await client.stored()} after")
