"""PUT /upload/<name>, streamed, and refused before its body is read if it says it is too big."""

import asyncio
import os

import tornado.web

LIMIT = 10 * 1024**2  # the largest body taken: 10 MiB


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self):  # the headers are in, not a byte of the body yet
        self.received = 0
        if int(self.request.headers.get("Content-Length", "0")) > LIMIT:
            raise tornado.web.HTTPError(413)  # Content Too Large: the body is never read
        self.request.connection.set_max_body_size(LIMIT)  # a body of unknown size is cut off past it

    def data_received(self, chunk):
        self.received += len(chunk)

    def put(self, name):
        self.write(f"received {self.received} bytes\n")


async def main():
    tornado.web.Application([(r"/upload/([^/]+)", UploadHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
