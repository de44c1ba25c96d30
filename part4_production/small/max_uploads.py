"""Shedding load: past MAX_UPLOADS uploads at once, a 503 before the body is read."""

import asyncio
import os

import tornado.web

MAX_UPLOADS = 2
under_way = set()  # the uploads receiving their body


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self):  # the headers are in, the body not yet
        if len(under_way) >= MAX_UPLOADS:
            self.set_status(503)
            self.set_header("Retry-After", "10")  # seconds
            return self.finish("too many uploads at once: try again in a moment\n")
        under_way.add(self)
        self.received = 0

    def data_received(self, chunk):
        self.received += len(chunk)  # a real upload stores it here

    def put(self):
        self.write(f"stored {self.received} bytes\n")

    def on_finish(self):  # the answer is sent
        under_way.discard(self)

    def on_connection_close(self):  # the client left mid-body: no on_finish() comes
        under_way.discard(self)

async def main():
    tornado.web.Application([(r"/upload", UploadHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
