"""GET /files/<name> with `Range: bytes=first-last`: a 206 and those bytes only, read from their chunks."""

import asyncio
import os
import re

import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket


class FileHandler(tornado.web.RequestHandler):
    async def put(self, name):  # the body whole, up to 100 MB: enough to have files to send
        await self.settings["fs"].upload_from_stream(name, self.request.body)

    async def get(self, name):
        grid_out = await self.settings["fs"].open_download_stream_by_name(name)
        start, end, size = 0, grid_out.length, grid_out.length  # the bytes to send: start included, end not
        if match := re.fullmatch(r"bytes=(\d+)-(\d*)", self.request.headers.get("Range", "")):
            start, end = int(match[1]), min(int(match[2] or size - 1) + 1, size)  # "last" is included
            if start >= end:  # none of those bytes exist: 416, Range Not Satisfiable
                self.set_status(416)
                return self.set_header("Content-Range", f"bytes */{size}")
            self.set_status(206)  # Partial Content
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.set_header("Content-Length", end - start)
        grid_out.seek(start)  # readchunk() then gives the rest of the chunk that holds byte `start`
        while start < end and (chunk := await grid_out.readchunk()):
            self.write(chunk[: end - start])
            start += len(chunk)
            await self.flush()


async def main():
    db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "small")]
    app = tornado.web.Application([(r"/files/([^/]+)", FileHandler)], fs=MotorGridFSBucket(db))
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
