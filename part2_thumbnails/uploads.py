"""The home page: the newest uploads, and the form that adds one, stored in GridFS
with its thumbnail (or not at all)."""

import asyncio
import datetime

import tornado.web
from bson import ObjectId
from pymongo.errors import PyMongoError

from base import BaseHandler, check_filename, log
from thumbnails import NotAnImage, make_thumbnail

NEWEST = 20  # how many uploads the home page lists
# What the home page lists: images as this stage stores them. Another stage, a tool or
# a person may have put other documents in the same collection: those are not listed.
LISTED = {"_id": {"$type": "objectId"}, "filename": {"$type": "string"}, "thumbnail": {"$type": "objectId"},
          "width": {"$type": "number"}, "height": {"$type": "number"}}


class MainHandler(BaseHandler):
    async def get(self):
        cursor = self.db.imgs.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        uploads = await cursor.to_list(None)
        self.render("index.html", uploads=uploads)

    def head(self):  # what GET sends, without the body: monitors and `curl -I` ask so
        return self.get()

    async def post(self):
        files = self.request.files.get("file")
        if not files or not files[0].body:
            raise tornado.web.HTTPError(400, "Choose an image to upload: the file is missing or empty.")
        upload = files[0]
        check_filename(upload.filename)
        try:
            image_type, width, height, thumbnail = await self.run_blocking(make_thumbnail, upload.body)
        except NotAnImage as error:
            raise tornado.web.HTTPError(400, str(error))
        try:
            image_id = await self.store(upload, image_type, width, height, thumbnail)
        except PyMongoError as error:  # one line: the driver's traceback tells no more
            log.error("could not store %r: %s", upload.filename, error)
            raise tornado.web.HTTPError(503, "The database failed: the image was not stored. Please try again.")
        log.info("stored %r as %s (%d bytes, %dx%d)", upload.filename, image_id, len(upload.body), width, height)
        self.redirect(self.reverse_url("main"))

    async def store(self, upload, image_type, width, height, thumbnail):
        """The original and its thumbnail in GridFS, side by side, then the document
        that lists them. If any of it fails, what was stored is deleted."""
        results = await asyncio.gather(
            self.fs.upload_from_stream(upload.filename, upload.body, metadata={"contentType": image_type}),
            self.fs.upload_from_stream(f"{upload.filename}.thumbnail.png", thumbnail,
                                       metadata={"contentType": "image/png"}),
            # Wait for both, even if one fails: then we know what there is to delete.
            return_exceptions=True,
        )
        stored = [result for result in results if isinstance(result, ObjectId)]
        try:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            original_id, thumbnail_id = results
            document = await self.db.imgs.insert_one({
                "filename": upload.filename,
                "contentType": image_type,
                "length": len(upload.body),
                "width": width,
                "height": height,
                "uploadDate": datetime.datetime.now(datetime.UTC),
                "original": original_id,
                "thumbnail": thumbnail_id,
            })
        except Exception:
            await self.delete_files(stored)
            raise
        return document.inserted_id

    async def delete_files(self, file_ids):
        """Delete GridFS files, logging what cannot be: we are already handling an error."""
        results = await asyncio.gather(*(self.fs.delete(file_id) for file_id in file_ids), return_exceptions=True)
        for file_id, result in zip(file_ids, results):
            if isinstance(result, Exception):
                log.error("could not delete file %s, left behind: %r", file_id, result)
