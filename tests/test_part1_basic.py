"""What only part 1 does: it trusts the type the client claims, within safe image types.

Each test gets a stage and a database of its own: it stores a file, or checks that
nothing was stored."""

import pytest
from motor.motor_tornado import MotorGridFSBucket

from coursekit.clients import error_message
from coursekit.images import image_bytes

RUNS_ON = ["part1_basic"]


@pytest.mark.parametrize("content_type", ["text/html", "image/svg+xml", "application/octet-stream"])
async def test_415_and_nothing_stored_for_a_type_that_is_not_a_safe_image(client, content_type):
    response = await client.upload(b"<script>alert(1)</script>", "page.html", content_type)
    assert response.code == 415
    assert "PNG, JPEG, GIF and WebP" in error_message(response.body.decode())
    assert set((await client.stored()).values()) == {0}


async def test_images_are_served_with_nosniff(client):
    await client.upload(image_bytes())
    [(href, _)] = await client.listed()
    response = await client.fetch(href)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_file_stored_without_metadata_is_served_as_octet_stream(client, db):
    # As `mongofiles put` would store it: no metadata.contentType.
    file_id = await MotorGridFSBucket(db).upload_from_stream("raw.bin", b"\x00\x01\x02")
    response = await client.fetch(f"/imgs/{file_id}")
    assert response.code == 200
    assert response.body == b"\x00\x01\x02"
    assert response.headers["Content-Type"] == "application/octet-stream"
