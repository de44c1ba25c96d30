"""Sweeping abandoned uploads: the pieces of an upload silent for ABANDONED_AFTER seconds."""

import asyncio
import datetime
import os

import tornado.web
from bson import ObjectId
from motor.motor_tornado import MotorClient

ABANDONED_AFTER = 2  # seconds (part 4: an hour)
db = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))[os.environ.get("MONGODB_DB", "sweeper")]


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    async def data_received(self, chunk):  # the record, stamped; nothing else deletes the pieces
        self.id = getattr(self, "id", ObjectId())  # the upload's, from its first piece
        await db.records.update_one({"_id": self.id}, {"$currentDate": {"updated": True}}, upsert=True)
        await db.pieces.insert_one({"upload": self.id, "data": chunk})

    async def put(self, name):
        await db.records.delete_one({"_id": self.id})  # done: the record goes, the pieces stay
        self.write(f"stored {name}\n")

    async def get(self, _):  # what the database holds
        self.write(f"{await db.records.count_documents({})} uploads, {await db.pieces.count_documents({})} pieces\n")


async def main():
    tornado.web.Application([(r"/upload/(.*)", UploadHandler)]).listen(int(os.environ.get("PORT", "8000")))
    while True:  # the sweep, every second: the records not stamped for ABANDONED_AFTER, and their pieces
        stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=ABANDONED_AFTER)
        async for upload in db.records.find({"updated": {"$lt": stale}}):
            await db.pieces.delete_many({"upload": upload["_id"]})
            await db.records.delete_one({"_id": upload["_id"]})
        await asyncio.sleep(1)


asyncio.run(main())
