"""The smallest streamed upload: PUT /upload/<name> goes into GridFS as it arrives."""

import asyncio
import os
import resource

import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self):  # the headers are in, the body is not
        self.request.connection.set_max_body_size(10 * 1024**3)  # this request may send 10 GiB
        self.grid_in = self.settings["fs"].open_upload_stream(self.path_args[0])

    async def data_received(self, chunk):  # each piece of the body, up to 64 KiB
        await self.grid_in.write(chunk)  # Tornado reads no more of the body until this returns

    async def put(self, name):  # the whole body is in
        await self.grid_in.close()
        # The most memory this process has held yet: ru_maxrss counts KiB on Linux, bytes on macOS.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** (2 if os.uname().sysname == "Darwin" else 1)
        self.write(f"stored {self.grid_in.length} bytes; memory peak {peak:.0f} MB\n")

    def on_connection_close(self):  # the client left before the end: delete what was stored
        super().on_connection_close()
        asyncio.ensure_future(self.grid_in.abort())


async def main():
    db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "small")]
    app = tornado.web.Application([(r"/upload/([^/]+)", UploadHandler)], fs=MotorGridFSBucket(db))
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
