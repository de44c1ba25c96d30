"""A graceful stop: on SIGTERM, refuse new connections, let the requests under way finish."""

import asyncio
import os
import signal

import tornado.web
from tornado.httpserver import HTTPServer

SHUTDOWN_TIMEOUT = 25  # seconds
in_flight = set()  # the requests under way


class SlowHandler(tornado.web.RequestHandler):
    def prepare(self):
        in_flight.add(self)

    def on_finish(self):  # the answer is sent
        in_flight.discard(self)

    async def get(self):
        await asyncio.sleep(float(self.get_argument("seconds", "2")))  # a slow request
        self.write(f"done, by process {os.getpid()}\n")


async def main():
    server = HTTPServer(tornado.web.Application([(r"/slow", SlowHandler)]))
    server.listen(int(os.environ.get("PORT", "8000")))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.stop()  # close the listening socket: the port refuses new connections
    for _ in range(10 * SHUTDOWN_TIMEOUT):  # wait while requests are under way
        if in_flight:
            await asyncio.sleep(0.1)
    await server.close_all_connections()  # idle ones, and busy ones after the timeout


if __name__ == "__main__":
    asyncio.run(main())
