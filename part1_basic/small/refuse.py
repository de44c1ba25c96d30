"""Chapter 4's smallest version: a bad upload refused, with a status and a message of its own."""

import asyncio
import os

import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


class UploadHandler(tornado.web.RequestHandler):
    async def post(self):
        files = self.request.files.get("file")  # None, not a KeyError, when the field is missing
        if not files or not files[0].body:
            raise tornado.web.HTTPError(400, "Choose an image to upload: the file is missing or empty.")
        if files[0].content_type not in IMAGE_TYPES:
            raise tornado.web.HTTPError(415, "Only PNG, JPEG, GIF and WebP images can be uploaded.")
        await self.settings["fs"].upload_from_stream(files[0].filename, files[0].body)
        self.write(f"stored {files[0].filename!r}\n")  # repr() shows invisible characters as escapes

    def write_error(self, status_code, **kwargs):  # the message given to HTTPError, not Tornado's page
        error = kwargs["exc_info"][1]
        self.finish(f"{status_code}: {getattr(error, 'log_message', None) or self._reason}\n")


async def main():
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))
    fs = MotorGridFSBucket(client[os.environ.get("MONGODB_DB", "part1_small")])
    tornado.web.Application([(r"/", UploadHandler)], fs=fs).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
