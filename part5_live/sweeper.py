"""Sweeping away what abandoned uploads left: the chunks of an upload whose process
died, or could not clean up, found by its record in uploads_in_progress."""

import datetime

import tornado.gen
import tornado.web

from base import log

SWEEP_EVERY = 300  # seconds between two sweeps, at most


class UploadSwept(tornado.web.HTTPError):
    """What an upload gets when a sweep has taken it (it received nothing for too long)."""

    def __init__(self):
        super().__init__(408, "That upload paused for too long and was given up: please send it again.")


async def sweep_abandoned_uploads(db, abandoned_after):
    """Delete what the uploads that have received nothing for `abandoned_after`
    seconds wrote (their process died, or could not clean up); return how many.

    It reads `uploads_in_progress` alone, by its index on `updated` (which
    create_indexes() makes at start-up): its cost grows with the uploads under way,
    never with fs.chunks. Any number of processes, on any number of machines, may
    sweep at once: each claims an upload before deleting anything, and only one
    claim can succeed."""
    uploads = db.uploads_in_progress
    # The database's clock: it stamped `updated`, so the machines' clocks do not matter.
    stale = (await db.command("hello"))["localTime"] - datetime.timedelta(seconds=abandoned_after)
    swept = 0
    async for upload in uploads.find({"updated": {"$lt": stale}}):
        # The claim: only if `updated` is still what we read. An upload that came back
        # to life, or another sweeper, changed it. Stamped anew, the document is not
        # stale again for abandoned_after; and the upload, if it lives, meets `swept`.
        claim = await uploads.update_one({"_id": upload["_id"], "updated": upload["updated"]},
                                         {"$set": {"swept": True}, "$currentDate": {"updated": True}})
        if not claim.matched_count:
            continue
        chunks = await db.fs.chunks.delete_many({"files_id": upload["_id"]})
        await db.fs.files.delete_one({"_id": upload["_id"]})  # if it died in the middle of close()
        await uploads.delete_one({"_id": upload["_id"]})  # last: a sweeper that dies before is followed by another
        log.info("swept upload %s, silent since %s UTC: %d chunks deleted", upload["_id"],
                 upload["updated"].strftime("%Y-%m-%d %H:%M:%S"), chunks.deleted_count)
        swept += 1
    return swept


async def sweep_abandoned_uploads_forever(db, abandoned_after):
    """Sweep now, then every min(abandoned_after, SWEEP_EVERY) seconds: a background
    loop as Tornado's guide writes them. Every process runs one."""
    period = min(abandoned_after, SWEEP_EVERY)
    while True:
        next_round = tornado.gen.sleep(period)  # the clock starts now: the sweep's own time is part of it
        try:
            await sweep_abandoned_uploads(db, abandoned_after)
        except Exception:  # the database is down, say: the next round tries again
            log.exception("could not sweep abandoned uploads")
        await next_round
