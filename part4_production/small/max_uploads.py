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

    def data_received(self, chunk):
        pass  # a real upload stores the chunk here

    def put(self):
        self.write("stored\n")

    def on_finish(self):  # the answer is sent
        under_way.discard(self)

    def on_connection_close(self):  # the client left mid-body: no on_finish() comes
        super().on_connection_close()  # Tornado's: it ends the request
        under_way.discard(self)


async def main():
    tornado.web.Application([(r"/upload", UploadHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
