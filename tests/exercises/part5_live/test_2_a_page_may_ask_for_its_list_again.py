"""Part 5, exercise 2: a page may ask for its list again.

The socket at /live takes one message from the page: the text `list`. The server
answers it with a message {"type": "list", "uploads": [...]}, the newest uploads as
the first message of a connection has them, read from the database when the page
asks (an upload stored since the socket opened is in it). Any other message is
refused as before: the server closes the socket with code 1008.
"""

import asyncio
import json

from tornado.websocket import websocket_connect

from coursekit.clients import Client, answer

RUNS_ON = ["part5_live"]


async def next_list(socket):
    """The next "list" message (an "upload" or "delete" may come first): its uploads'
    file names, or None if the server closes the socket first."""
    while True:
        try:
            message = await asyncio.wait_for(socket.read_message(), 10)
        except TimeoutError:
            raise AssertionError('the server should answer "list" with a list message within 10 s; '
                                 "it sent nothing") from None
        if message is None:
            return None
        message = json.loads(message)
        if message.get("type") == "list":
            return [upload["filename"] for upload in message["uploads"]]


async def test_the_page_asks_for_its_list_and_any_other_message_still_closes_the_socket(program):
    # The stage as a program: its server.py runs the change stream that live sockets wait for.
    client = Client(program().url)
    await client.visit()  # the XSRF cookie, for the upload
    socket = await websocket_connect(client.base_url.replace("http://", "ws://") + "/live")
    assert await next_list(socket) == [], "the first message of a socket is the list, empty on a new database"
    response = await client.put(b"hello", "hello.txt")
    assert response.code == 201, f"an upload still works (201); it answered {answer(response)}"
    await socket.write_message("list")
    listed = await next_list(socket)
    assert listed is not None, (
        f'the server should answer the message "list" with a list; it closed the socket (code {socket.close_code})')
    assert listed == ["hello.txt"], f"the list asked for should hold the upload stored since; it held {listed!r}"
    await socket.write_message("list")
    assert await next_list(socket) == ["hello.txt"], "a page may ask again, as often as it likes"
    await socket.write_message("hello")
    try:
        while (message := await asyncio.wait_for(socket.read_message(), 10)) is not None:
            assert json.loads(message).get("type") != "list", 'only the message "list" is answered with a list'
    except TimeoutError:
        raise AssertionError("a message other than \"list\" should close the socket; it stayed open") from None
    assert socket.close_code == 1008, (
        f'a message other than "list" closes the socket with 1008; it got {socket.close_code}')
