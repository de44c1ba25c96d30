"""An upload served back from GridFS: the original or its thumbnail."""

import tornado.web
from bson import ObjectId
from bson.errors import InvalidId
from gridfs.errors import NoFile

from base import BaseHandler, log
from thumbnails import IMAGE_TYPES


class ShowImageHandler(BaseHandler):
    async def get(self, image_id, version, include_body=True):
        try:
            image = await self.db.imgs.find_one({"_id": ObjectId(image_id)})
        except InvalidId:
            raise tornado.web.HTTPError(404, "There is no image here: that id is not valid.")
        if image is None:
            raise tornado.web.HTTPError(404, "There is no image with that id.")
        file_id = image.get("original" if version == "orig" else "thumbnail")
        try:
            grid_out = await self.fs.open_download_stream(file_id)
        except NoFile:  # the document outlived its file, or another program wrote it without one
            log.warning("image %s lists file %r, which does not exist", image_id, file_id)
            raise tornado.web.HTTPError(404, "That image's file is missing from the database.")
        # Files stored by other tools may have no metadata, or claim any type (text/html):
        # only our image types are served as such, anything else as a download.
        metadata = grid_out.metadata if isinstance(grid_out.metadata, dict) else {}
        content_type = metadata.get("contentType")
        if content_type not in IMAGE_TYPES.values():
            content_type = "application/octet-stream"
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Length", grid_out.length)
        if include_body:
            await grid_out.stream_to_handler(self)

    def head(self, image_id, version):  # the headers alone, without reading the file
        return self.get(image_id, version, include_body=False)
