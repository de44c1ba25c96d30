"""Part 5, exercise 1: /healthz counts the live sockets.

GET /healthz answers, while the database answers, a 200 whose body is JSON,
{"status": "ok", "sockets": N}, N being how many live sockets (/live) this process
holds open at that moment, with the header Content-Type: application/json (and, as
before, Cache-Control: no-store). A socket counts from when it has joined (its first
message, the "list", is on its way) until it closes, whoever closes it.
"""

import asyncio

from tornado.websocket import websocket_connect

from coursekit.clients import Client, health_counting
from coursekit.waiting import eventually

RUNS_ON = ["part5_live"]


async def health(client):
    return await health_counting(client, "sockets")


async def counts_soon(client, count, when):
    """Wait (10 s at most) for /healthz to count `count` sockets, or say what it answers."""
    async def counted():
        return (await health(client)).get("sockets") == count

    try:
        await eventually(counted, timeout=10)
    except AssertionError:
        raise AssertionError(f'{when}, GET /healthz should answer {{"status": "ok", "sockets": {count}}}; '
                             f"it answered {await health(client)!r}") from None


async def open_socket(client):
    """A socket open to /live, once its first message is in."""
    socket = await websocket_connect(client.base_url.replace("http://", "ws://") + "/live")
    assert await asyncio.wait_for(socket.read_message(), 10) is not None, "a socket to /live gets a first message"
    return socket


async def test_healthz_counts_the_live_sockets(program):
    # The stage as a program: its server.py runs the change stream that live sockets wait for.
    client = Client(program().url)
    body = await health(client)
    assert body == {"status": "ok", "sockets": 0}, (
        f'with no socket open, GET /healthz should answer {{"status": "ok", "sockets": 0}}; it answered {body!r}')
    first, second = await open_socket(client), await open_socket(client)
    await counts_soon(client, 2, "with two sockets open")
    first.close()
    await counts_soon(client, 1, "once one of them is closed")
    second.close()
    await counts_soon(client, 0, "once both are closed")
