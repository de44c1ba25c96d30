"""Silent clients let go: a connection closed after IDLE_TIMEOUT seconds of silence
while its request's headers come, and a body that takes longer than that."""

import asyncio
import os

import tornado.web
from tornado.httpserver import HTTPServer

IDLE_TIMEOUT = 2  # seconds


class EchoHandler(tornado.web.RequestHandler):
    def put(self):
        self.write(f"received {len(self.request.body)} bytes\n")


async def main():
    server = HTTPServer(
        tornado.web.Application([(r"/echo", EchoHandler)]),
        idle_connection_timeout=IDLE_TIMEOUT,  # waiting for headers (Tornado's default: an hour)
        body_timeout=IDLE_TIMEOUT,  # the whole body (the default: no limit)
    )
    server.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
