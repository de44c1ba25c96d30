"""An upload and its thumbnail stored in GridFS side by side, and a document tying them."""

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor

import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from PIL import Image
from tornado.ioloop import IOLoop


def make_thumbnail(data):  # the image's type, and a PNG thumbnail
    image = Image.open(io.BytesIO(data))
    thumbnail, png = image.convert("RGB"), io.BytesIO()
    thumbnail.thumbnail((128, 128), Image.Resampling.LANCZOS)
    thumbnail.save(png, "PNG")
    return Image.MIME[image.format], png.getvalue()


class UploadHandler(tornado.web.RequestHandler):
    async def post(self):
        upload, fs = self.request.files["file"][0], self.settings["fs"]
        image_type, png = await IOLoop.current().run_in_executor(self.settings["pool"], make_thumbnail, upload.body)
        original, thumbnail = await asyncio.gather(  # the two saves at once
            fs.upload_from_stream(upload.filename, upload.body, metadata={"contentType": image_type}),
            fs.upload_from_stream(upload.filename + ".thumbnail.png", png, metadata={"contentType": "image/png"}))
        await self.settings["db"].imgs.insert_one({"filename": upload.filename, "original": original, "thumbnail": thumbnail})
        self.write(f"Stored {upload.filename} ({image_type}, {len(upload.body)} bytes) and its thumbnail\n")


async def main():
    db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "small")]
    app = tornado.web.Application([(r"/", UploadHandler)], db=db, fs=MotorGridFSBucket(db), pool=ThreadPoolExecutor(1))
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
