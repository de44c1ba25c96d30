"""The thumbnailer, with Pillow's work on a pool of threads: the loop serves meanwhile."""

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor

import tornado.web
from PIL import Image
from tornado.ioloop import IOLoop


def make_thumbnail(data):  # blocks until done: we run it on a thread
    image = Image.open(io.BytesIO(data))
    image.draft(None, (256, 256))
    image = image.convert("RGB")
    image.thumbnail((128, 128), Image.Resampling.LANCZOS)
    png = io.BytesIO()
    image.save(png, "PNG")
    return png.getvalue()


class ThumbnailHandler(tornado.web.RequestHandler):
    async def post(self):
        upload = self.request.files["file"][0]
        pool = self.settings["thumbnail_pool"]
        png = await IOLoop.current().run_in_executor(pool, make_thumbnail, upload.body)
        self.set_header("Content-Type", "image/png")
        self.write(png)


async def main():
    pool = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1))  # a core left for the loop
    app = tornado.web.Application([(r"/", ThumbnailHandler)], thumbnail_pool=pool)
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
