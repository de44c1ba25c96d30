"""The smallest thumbnailer: POST an image as `file`, get back its thumbnail, a PNG.

Pillow works on the event loop: while it decodes, no other request is served."""

import asyncio
import io
import os

import tornado.web
from PIL import Image


class ThumbnailHandler(tornado.web.RequestHandler):
    def post(self):
        upload = self.request.files["file"][0]
        image = Image.open(io.BytesIO(upload.body))  # reads the header only
        image.draft(None, (256, 256))  # a JPEG may decode at 1/2, 1/4 or 1/8 of its size
        image = image.convert("RGB")  # decodes it all: the slow part
        image.thumbnail((128, 128), Image.Resampling.LANCZOS)  # fits it in 128x128
        png = io.BytesIO()
        image.save(png, "PNG")
        self.set_header("Content-Type", "image/png")
        self.write(png.getvalue())


async def main():
    app = tornado.web.Application([(r"/", ThumbnailHandler)])
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()  # serve until Ctrl+C


asyncio.run(main())
