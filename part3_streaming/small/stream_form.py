"""POST /upload, a form parsed as it streams in: each part is hashed as its bytes come, never held whole."""

import asyncio
import hashlib
import os

import tornado.web
from multipart import MultipartSegment, PushMultipartParser, parse_options_header


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self):
        self.request.connection.set_max_body_size(10 * 1024**3)
        _, options = parse_options_header(self.request.headers["Content-Type"])  # multipart/form-data; boundary=...
        self.form, self.parts = PushMultipartParser(options["boundary"]), []

    def data_received(self, chunk):
        for event in self.form.parse(chunk):  # what this piece of the body holds
            if isinstance(event, MultipartSegment):  # a part begins: its headers are in
                self.part, self.sha256 = event, hashlib.sha256()
            elif event is None:  # the part has ended
                self.parts.append(f"{self.part.name} {self.part.filename!r}: {self.part.size} bytes, "
                                  f"SHA-256 {self.sha256.hexdigest()}")
            else:  # some bytes of the part
                self.sha256.update(event)

    def post(self):
        self.form.close()  # raises if the form ended before its closing boundary
        self.write("\n".join(self.parts) + "\n")


async def main():
    tornado.web.Application([(r"/upload", UploadHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
