"""The thumbnailer, refusing with a 400 what Pillow cannot read as one of our formats."""

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor

import tornado.web
from PIL import Image
from tornado.ioloop import IOLoop


def make_thumbnail(data):
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "GIF", "WEBP"])  # no other format
        image = image.convert("RGB")  # decodes it all: a damaged file fails here, not later
    except Exception:  # UnidentifiedImageError, DecompressionBombError, ValueError, SyntaxError...
        raise tornado.web.HTTPError(400, reason="Not a sound PNG, JPEG, GIF or WebP image")
    image.thumbnail((128, 128), Image.Resampling.LANCZOS)
    png = io.BytesIO()
    image.save(png, "PNG")
    return png.getvalue()


class ThumbnailHandler(tornado.web.RequestHandler):
    async def post(self):
        if not (files := self.request.files.get("file")):  # no such field: None, where ["file"] raises KeyError
            raise tornado.web.HTTPError(400, reason="No file")
        png = await IOLoop.current().run_in_executor(self.settings["pool"], make_thumbnail, files[0].body)
        self.set_header("Content-Type", "image/png")
        self.write(png)


async def main():
    app = tornado.web.Application([(r"/", ThumbnailHandler)], pool=ThreadPoolExecutor(1))
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
