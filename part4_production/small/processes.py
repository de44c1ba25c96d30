"""Several processes serving one port: bind it first, then fork. Each process runs
an event loop of its own, and the kernel gives each new connection to one of them."""

import asyncio
import os

import tornado.netutil
import tornado.process
import tornado.web
from tornado.httpserver import HTTPServer

PROCESSES = 2


class WhoHandler(tornado.web.RequestHandler):
    def get(self):
        child = tornado.process.task_id()  # 0, 1...: which of the forked children this is
        self.write(f"child {child} of {PROCESSES}: pid {os.getpid()} ppid {os.getppid()}\n")


async def serve(sockets):
    # After the fork: an event loop must not cross one.
    server = HTTPServer(tornado.web.Application([(r"/", WhoHandler)]))
    server.add_sockets(sockets)
    await asyncio.Event().wait()  # serve until stopped


def main():
    sockets = tornado.netutil.bind_sockets(int(os.environ.get("PORT", "8000")))
    # The parent stays inside fork_processes(), restarting a child that crashes;
    # each child returns from it, and serves the sockets the parent bound.
    tornado.process.fork_processes(PROCESSES)
    asyncio.run(serve(sockets))


if __name__ == "__main__":
    main()
