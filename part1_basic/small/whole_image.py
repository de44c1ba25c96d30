"""Chapter 3's smallest version: each upload served back from GridFS, read whole first."""

import asyncio
import os

import tornado.web
from bson import ObjectId
from motor.motor_tornado import MotorClient, MotorGridFSBucket


class UploadHandler(tornado.web.RequestHandler):
    async def post(self):
        upload = self.request.files["file"][0]
        file_id = await self.settings["fs"].upload_from_stream(
            upload.filename, upload.body, metadata={"contentType": upload.content_type})
        self.redirect(f"/imgs/{file_id}")  # to the image itself


class ShowImageHandler(tornado.web.RequestHandler):
    async def get(self, image_id):
        grid_out = await self.settings["fs"].open_download_stream(ObjectId(image_id))
        self.set_header("Content-Type", grid_out.metadata["contentType"])
        self.write(await grid_out.read())  # every chunk, joined in memory, before the first byte goes out


async def main():
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))
    fs = MotorGridFSBucket(client[os.environ.get("MONGODB_DB", "part1_small")])
    routes = [(r"/", UploadHandler), (r"/imgs/([^/]+)", ShowImageHandler)]
    tornado.web.Application(routes, fs=fs).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
