"""Part 3: uploads streamed into GridFS, and big files served in chunks.

Run it with `python part3_streaming/app.py`; `--help` lists its options. Their
defaults come from the environment variables PORT (8000), MONGODB_URI
(mongodb://localhost:27017), MONGODB_DB (part3_streaming, the stage's name) and
COOKIE_SECRET.
"""

import asyncio
import os
import secrets
import sys
from pathlib import Path

import tornado.log
import tornado.options
import tornado.web
from gridfs import GridFSBucket
from motor.motor_tornado import MotorClient, MotorGridFSBucket
from pymongo.errors import PyMongoError

from base import NotFoundHandler, log, redact
from disk_files import FileHandler
from downloads import DownloadHandler
from gridfs_chunks import create_indexes
from home import HomeHandler
from thumbnails import thumbnail_pool
from uploads import FORM_OVERHEAD, FormUploadHandler, PutUploadHandler

HERE = Path(__file__).parent

# Our own registry, not tornado.options.options: the tests import every stage into
# one process, and a global registry refuses a second `port`.
options = tornado.options.OptionParser()
options.define("port", default=int(os.environ.get("PORT", "8000")), help="the port to listen on (env PORT)")
options.define("db_uri", default=os.environ.get("MONGODB_URI", "mongodb://localhost:27017"),
               help="the MongoDB to use (env MONGODB_URI)")
# A database of the stage's own: each stage stores its files its own way.
options.define("db_name", default=os.environ.get("MONGODB_DB", HERE.name),
               help="the database to use (env MONGODB_DB)")
options.define("debug", default=False, help="reload when the code or a template changes")
# No default here, or --help would print the secret.
options.define("cookie_secret", type=str,
               help="the key that signs cookies (env COOKIE_SECRET, else a random one at each start)")
options.define("max_upload_size", default=4 * 1024**3, help="the largest upload accepted, in bytes (4 GiB)")
options.define("files_dir", type=str, help="a directory whose files are served at /files/ (none by default)")
options.define("config", type=str, help="a Python file of option values, such as: port = 8001",
               callback=lambda path: options.parse_config_file(path, final=False))


def make_app(db, cookie_secret=None, thumbnail_executor=None, max_upload_size=4 * 1024**3,
             files_dir=None, **settings):
    """The application, storing its files in the Motor database `db`.

    With no `cookie_secret`, a random one; with no `thumbnail_executor`, a pool
    of thumbnail threads of its own. With `files_dir`, the files of that
    directory are served at /files/."""
    routes = [
        tornado.web.url(r"/", HomeHandler, name="home"),
        tornado.web.url(r"/upload", FormUploadHandler, name="form_upload"),
        tornado.web.url(r"/upload/([^/]+)", PutUploadHandler, name="put_upload"),
        tornado.web.url(r"/uploads/([^/]+)/(orig|thumb)", DownloadHandler, name="download"),
    ]
    if files_dir:
        routes.append(tornado.web.url(r"/files/(.+)", FileHandler, name="files"))
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        template_path=HERE / "templates",
        static_path=HERE / "static",
        fs=MotorGridFSBucket(db),
        # The same client through PyMongo's blocking API, for the thumbnail threads: Motor
        # runs each of its calls on a thread with this `delegate` too, and one pool of
        # connections serves both. (PyMongo's async API has no delegate: notebook 05.)
        sync_fs=GridFSBucket(db.delegate),
        db=db,
        # Made with the app, not at import: an app's threads are its own.
        thumbnail_executor=thumbnail_executor or thumbnail_pool(),
        max_upload_size=max_upload_size,
        files_dir=files_dir,
        cookie_secret=cookie_secret or secrets.token_hex(32),
        xsrf_cookies=True,  # every POST and PUT repeats the token of the visitor's _xsrf cookie
        cross_origin_protection=True,  # and comes, as the browser tells, from our own pages
        **settings,
    )


async def main():
    # Tornado prints the whole of --help before it names an option it does not know.
    if unknown := [arg for arg in sys.argv[1:] if arg.startswith("-") and arg.lstrip("-").split("=")[0] not in options]:
        sys.exit(f"error: no such option: {unknown[0].split('=')[0]} (--help lists them)")
    try:
        options.parse_command_line()
    except (tornado.options.Error, ValueError, OSError) as error:  # e.g. --port=abc, or no such --config
        sys.exit(f"error: {error}")
    tornado.log.enable_pretty_logging()
    client = MotorClient(options.db_uri, serverSelectionTimeoutMS=3000)
    try:
        await client.admin.command("ping")
    except PyMongoError as error:
        sys.exit(f"error: no MongoDB answers at {redact(options.db_uri)} ({type(error).__name__})")
    try:
        await create_indexes(client[options.db_name])  # once, here: not at each upload
    except PyMongoError as error:  # a user who may not create indexes, say
        sys.exit(f"error: cannot create the indexes of database {options.db_name!r}: {error}")
    cookie_secret = options.cookie_secret or os.environ.get("COOKIE_SECRET")
    app = make_app(client[options.db_name], cookie_secret, max_upload_size=options.max_upload_size,
                   files_dir=options.files_dir, debug=options.debug)
    try:
        # A handler that does not stream reads a request's body whole before it runs:
        # none of ours wants more than a little. The uploads raise it for themselves.
        app.listen(options.port, max_body_size=FORM_OVERHEAD)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {options.port}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r", options.port, options.db_name)
    await asyncio.Event().wait()  # serve until Ctrl+C


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
