"""GET /files/<path>: the files of a folder (FILES_DIR, else the current one), read 1 MiB at a time."""

import asyncio
import os

import tornado.web
from tornado.iostream import StreamClosedError

ROOT = os.path.abspath(os.environ.get("FILES_DIR", "."))


class FileHandler(tornado.web.RequestHandler):
    async def get(self, path):
        if ".." in path.split("/"):  # no way up, out of the folder
            raise tornado.web.HTTPError(404)
        try:
            file = open(os.path.join(ROOT, path), "rb")
        except OSError:  # no such file, a folder, no permission
            raise tornado.web.HTTPError(404)
        with file:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Length", os.fstat(file.fileno()).st_size)
            try:
                while piece := file.read(1024 * 1024):  # on the event loop: fast from the page cache
                    self.write(piece)
                    await self.flush()
            except StreamClosedError:  # the client has gone
                pass


async def main():
    tornado.web.Application([(r"/files/(.+)", FileHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
