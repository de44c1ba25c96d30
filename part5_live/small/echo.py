"""The smallest WebSocket echo: what a page sends, it gets back."""

import asyncio
import os

import tornado.web
import tornado.websocket


class Echo(tornado.websocket.WebSocketHandler):
    def open(self):
        print("a socket opened")

    def on_message(self, message):
        self.write_message(message)  # back to the socket that sent it, and only there

    def on_close(self):
        print("a socket closed")


async def main():
    app = tornado.web.Application([(r"/echo", Echo)])
    app.listen(int(os.environ.get("PORT", 8000)))
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    asyncio.run(main())
