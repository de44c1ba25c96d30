"""The home page: the newest uploads, and the form that adds one; from part 5, the
address of the live socket that keeps the list up to date."""

from base import BaseHandler
from upload_checks import human_size

NEWEST = 20  # how many uploads the home page lists
# What the home page lists: files as this stage stores them. Another stage, a tool or
# a person may have put other documents in the same collection: those are not listed.
LISTED = {"_id": {"$type": "objectId"}, "filename": {"$type": "string"}, "length": {"$type": "number"},
          "contentType": {"$type": "string"}, "uploadDate": {"$type": "date"},  # the live page orders by it
          "$or": [{"thumbnail": {"$type": "null"}},
                  {"thumbnail": {"$type": "objectId"}, "width": {"$type": "number"}, "height": {"$type": "number"}}]}


class HomeHandler(BaseHandler):
    """GET /: the newest uploads, and the form to add one."""

    async def get(self):
        cursor = self.db.uploads.find(LISTED).sort([("uploadDate", -1), ("_id", -1)]).limit(NEWEST)
        uploads = await cursor.to_list(None)
        # The live socket's address, unless the database has no change streams to tell it.
        live = None if self.settings["feed"].off else self.reverse_url("live")
        self.render("index.html", uploads=uploads, human_size=human_size,
                    max_upload_size=self.settings["max_upload_size"], live=live, newest=NEWEST)

    def head(self):  # what GET sends, without the body: monitors and `curl -I` ask so
        return self.get()
