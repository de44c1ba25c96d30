"""Part 3, exercise 3: count whole downloads.

Each `uploads` document counts, as `downloads`, the GETs of its original that were
answered in full: a 200, every byte of it sent. A new upload starts at
"downloads": 0. A HEAD, a 304, a 206 (a range) and a client that leaves before the
end add nothing. Two downloads that end at the same moment both count: add with
$inc, in the database, not in Python.
"""

import asyncio
import json
import os

from bson import ObjectId

from coursekit.clients import RawConnection, answer
from coursekit.waiting import eventually

RUNS_ON = ["part3_streaming"]


async def test_only_whole_downloads_count(client):
    data = os.urandom(20 * 1024 * 1024)  # more than the sockets' buffers hold
    response = await client.fetch("/upload/big.bin", "PUT", data, request_timeout=120)
    assert response.code == 201, f"PUT /upload/big.bin should store it (201); it answered {answer(response)}"
    upload_id = ObjectId(json.loads(response.body)["id"])
    path = f"/uploads/{upload_id}/orig"

    async def downloads():
        return (await client.db.uploads.find_one(upload_id)).get("downloads", "nothing")

    assert await downloads() == 0, f'a new upload should start at "downloads": 0; it has {await downloads()}'

    head = await client.fetch(path, "HEAD")
    ranged = await client.fetch(path, headers={"Range": "bytes=0-99"})
    cached = await client.fetch(path, headers={"If-None-Match": head.headers["ETag"]})
    assert (head.code, ranged.code, cached.code) == (200, 206, 304), "HEAD, Range and If-None-Match work as before"
    async with RawConnection(client.base_url) as gone:  # gone after the headers, with the file hardly begun
        await gone.send_headers("GET", path)
        await gone.reader.readuntil(b"\r\n\r\n")
    whole = await client.fetch(path, request_timeout=120)
    assert whole.code == 200 and whole.body == data, "a GET of the original sends it whole, as before"

    async def counted():
        return await downloads() != 0

    await eventually(counted)
    assert await downloads() == 1, (
        "after a HEAD, a 206, a 304, a client gone at the start and one whole download, "
        f'"downloads" should be 1; it is {await downloads()}')

    responses = await asyncio.gather(*(client.fetch(path, request_timeout=120) for _ in range(2)))
    assert [response.code for response in responses] == [200, 200]

    async def both_counted():
        return await downloads() == 3

    await eventually(both_counted)
