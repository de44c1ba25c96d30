"""Fan-out in one process: what one socket sends, every open socket gets."""

import asyncio
import os

import tornado.web
import tornado.websocket


class Room(tornado.websocket.WebSocketHandler):
    sockets = set()  # the open sockets of this process, all of them

    def open(self):
        self.sockets.add(self)

    def on_message(self, message):
        for socket in self.sockets:  # the sender too: it sees its message arrive
            socket.write_message(message)

    def on_close(self):
        self.sockets.discard(self)


async def main():
    app = tornado.web.Application([(r"/room", Room)])
    app.listen(int(os.environ.get("PORT", 8000)))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
