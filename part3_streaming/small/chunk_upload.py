"""GridFS by hand: PUT /upload/<name> stored as it arrives, a 255 KiB chunk at a time."""

import asyncio
import datetime
import os
import resource
import tornado.web
from bson import ObjectId
from motor.motor_tornado import MotorClient

CHUNK_SIZE = 255 * 1024  # GridFS's default: each chunk is a document of the collection fs.chunks


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):  # bodies up to 100 MB (Tornado's default max_body_size)
    def prepare(self):
        self.chunks, self.pending, self.id = self.settings["db"].fs.chunks, b"", ObjectId()  # pending: the next chunk
        self.file = {"_id": self.id, "filename": self.path_args[0], "chunkSize": CHUNK_SIZE, "length": 0}

    async def data_received(self, chunk, last=False):
        self.pending += chunk
        while len(self.pending) >= CHUNK_SIZE or (last and self.pending):  # a whole chunk, or the last one
            data, self.pending = self.pending[:CHUNK_SIZE], self.pending[CHUNK_SIZE:]
            await self.chunks.insert_one({"files_id": self.id, "n": self.file["length"] // CHUNK_SIZE, "data": data})
            self.file["length"] += len(data)  # the next bytes are read once this chunk is stored

    async def put(self, name):
        await self.data_received(b"", last=True)
        await self.settings["db"].fs.files.insert_one({**self.file, "uploadDate": datetime.datetime.now(datetime.UTC)})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** (2 if os.uname().sysname == "Darwin" else 1)
        self.write(f"stored {self.file['length']} bytes; memory peak {peak:.0f} MB\n")


async def main():
    db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "small")]
    tornado.web.Application([(r"/upload/([^/]+)", UploadHandler)], db=db).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
