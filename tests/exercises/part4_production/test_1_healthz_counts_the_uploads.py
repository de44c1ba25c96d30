"""Part 4, exercise 1: /healthz counts the uploads under way.

GET /healthz answers, while the database answers, a 200 whose body is JSON,
{"status": "ok", "uploads": N}, N being how many uploads this process is receiving
or storing at that moment, with the header Content-Type: application/json (and,
as before, Cache-Control: no-store). An upload counts from when its headers are in
until it ends, stored, refused or cut short.
"""


from coursekit.clients import RawConnection, answer, health_counting
from coursekit.waiting import eventually

RUNS_ON = ["part4_production"]


async def health(client):
    return await health_counting(client, "uploads")


async def start_an_upload(connection, name):
    """A PUT whose headers and first bytes are sent, and then nothing: an upload under way."""
    await connection.send_headers("PUT", f"/upload/{name}", ["Content-Length: 1000000"])
    await connection.send(b"x" * 1000)


async def counts_soon(client, count, when):
    """Wait (10 s at most) for /healthz to count `count` uploads, or say what it answers."""
    async def counted():
        return (await health(client)).get("uploads") == count

    try:
        await eventually(counted, timeout=10)
    except AssertionError:
        raise AssertionError(f'{when}, GET /healthz should answer {{"status": "ok", "uploads": {count}}}; '
                             f"it answered {await health(client)!r}") from None


async def test_healthz_counts_the_uploads_under_way(client):
    body = await health(client)
    assert body == {"status": "ok", "uploads": 0}, (
        f'with no upload under way, GET /healthz should answer {{"status": "ok", "uploads": 0}}; it answered {body!r}')

    async with RawConnection(client) as first, RawConnection(client) as second:  # with the XSRF cookie and token
        await start_an_upload(first, "slow0.bin")
        await start_an_upload(second, "slow1.bin")
        await counts_soon(client, 2, "with two uploads under way")
    # gone: the uploads are cut short
    await counts_soon(client, 0, "once the uploads are cut short")
    response = await client.fetch("/upload/quick.txt", "PUT", b"hello")
    assert response.code == 201, f"an upload still works (201); it answered {answer(response)}"
    body = await health(client)
    assert body["uploads"] == 0, f'once an upload is stored, it no longer counts; /healthz says {body!r}'
