"""Chapter 1's smallest version: an upload form, each file stored in GridFS."""

import asyncio
import os

import tornado.web
from motor.motor_tornado import MotorClient, MotorGridFSBucket

FORM = """<form method="post" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>"""


class UploadHandler(tornado.web.RequestHandler):
    def get(self):
        self.write(FORM)

    async def post(self):
        upload = self.request.files["file"][0]  # the form's field named "file"
        db = self.settings["db"]
        file_id = await MotorGridFSBucket(db).upload_from_stream(upload.filename, upload.body)
        chunks = await db.fs.chunks.count_documents({"files_id": file_id})
        files = await db.fs.files.count_documents({})
        self.write(f"{upload.filename}: {len(upload.body)} bytes stored in {chunks} chunks. "
                   f"GridFS holds {files} files.\n")


async def main():
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))
    db = client[os.environ.get("MONGODB_DB", "part1_small")]
    app = tornado.web.Application([(r"/", UploadHandler)], db=db)
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
