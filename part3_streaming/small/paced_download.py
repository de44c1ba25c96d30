"""GET /files/<name>: a GridFS file sent a chunk at a time, at the pace the client reads it."""

import asyncio
import os

import tornado.web
from gridfs.errors import NoFile
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from tornado.iostream import StreamClosedError


class FileHandler(tornado.web.RequestHandler):
    async def put(self, name):  # the body whole, up to 100 MB: enough to have files to send
        await self.settings["fs"].upload_from_stream(name, self.request.body)

    async def get(self, name):
        try:
            grid_out = await self.settings["fs"].open_download_stream_by_name(name)
        except NoFile:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", grid_out.length)
        try:
            while chunk := await grid_out.readchunk():  # the file's next chunk, 255 KiB
                self.write(chunk)
                await self.flush()  # until the socket has taken it: no faster than the client reads
        except StreamClosedError:  # the client has gone: read no more
            pass


async def main():
    db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "small")]
    app = tornado.web.Application([(r"/files/([^/]+)", FileHandler)], fs=MotorGridFSBucket(db))
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
