"""Chapter 2's smallest version: a page listing the 20 newest uploads, by name."""

import asyncio
import os

import tornado.template
import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket

PAGE = tornado.template.Template("""<form method="post" enctype="multipart/form-data">
<input type="file" name="file"> <button>Upload</button></form>
<ul>
{% for upload in uploads %}  <li>{{ upload["filename"] }}</li>
{% end %}</ul>
""")


class MainHandler(tornado.web.RequestHandler):
    async def get(self):
        cursor = self.settings["fs"].find().sort("uploadDate", -1).limit(20)
        self.write(PAGE.generate(uploads=await cursor.to_list(None)))  # the query runs at to_list()

    async def post(self):
        upload = self.request.files["file"][0]
        await self.settings["fs"].upload_from_stream(upload.filename, upload.body)
        self.redirect("/")  # the browser then GETs the page: a reload will not upload again


async def main():
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))
    fs = MotorGridFSBucket(client[os.environ.get("MONGODB_DB", "part1_small")])
    tornado.web.Application([(r"/", MainHandler)], fs=fs).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
