"""Part 5: part 4 made live: the home page is told of every upload as it happens,
over a WebSocket, by every process, through MongoDB's change streams.

Run it with `python part5_live/app.py`; `--help` lists its options, whose
defaults come from the environment: PORT (8000), MONGODB_URI (mongodb://localhost:27017),
MONGODB_DB (part5_live, the stage's name) and COOKIE_SECRET.
"""

import asyncio
import os
import secrets
import sys
from pathlib import Path

import tornado.log
import tornado.netutil
import tornado.options
import tornado.web
from gridfs import GridFSBucket
from motor.motor_tornado import MotorGridFSBucket

from base import NotFoundHandler, log
from decode_budget import DecodeBudget
from disk_files import FileHandler
from downloads import DownloadHandler
from health import HealthHandler
from home import HomeHandler
from listener import raise_descriptor_limit
from live import LiveHandler, live_settings
from server import InFlight, check_database, serve, start_processes
from thumbnails import thumbnail_pool
from uploads import FormUploadHandler, PutUploadHandler

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
options.define("processes", default=1, help="how many processes serve, on one port (0: one per core)")
options.define("xheaders", default=False,
               help="take the client's address from X-Real-IP or X-Forwarded-For: only behind a proxy that sets them")
options.define("idle_timeout", default=60, type=float,
               help="close a connection silent for this long, in seconds, in its headers or its body, "
                    "or between requests; an upload bringing under 1 KiB/s over it; a download not read for it")
options.define("shutdown_timeout", default=25, type=float,
               help="on SIGTERM or Ctrl+C, how long the requests under way may take to finish, in seconds")
options.define("db_timeout", default=5, type=float,
               help="how long a database operation may take, in seconds, before the visitor gets a 503")
options.define("max_uploads", default=100, help="uploads at once in each process; more get a 503 and Retry-After")
options.define("config", type=str, help="a Python file of option values, such as: port = 8001",
               callback=lambda path: options.parse_config_file(path, final=False))
# Under load: what unfinished uploads leave behind, and the memory thumbnails take.
options.define("abandoned_after", default=3600,
               help="delete the chunks of an upload that has received nothing for this many seconds")
options.define("decode_budget", default=256 * 1024**2,
               help="the memory the thumbnail threads may decode images into at once, in bytes (256 MiB)")
# Live updates: how many sockets a process holds, how far behind one may fall, pings.
options.define("max_sockets", default=10_000, help="live sockets open at once in each process; more get a 503")
options.define("live_backlog", default=256 * 1024, help="close a live socket this many bytes behind (256 KiB)")
options.define("ping_interval", default=30.0, help="seconds between pings of a live socket, and the wait for its pong")
tornado.log.define_logging_options(options)  # --logging=warning, --log_file_prefix=...


def make_app(db, cookie_secret=None, thumbnail_executor=None, max_upload_size=4 * 1024**3,
             files_dir=None, idle_timeout=60, max_uploads=100, abandoned_after=3600,
             decode_budget=256 * 1024**2, max_sockets=10_000, live_backlog=256 * 1024, ping_interval=30,
             **settings):
    """The application, storing its files in the Motor database `db`. With no
    `cookie_secret`, a random one; with no `thumbnail_executor`, a pool of thumbnail
    threads of its own. The others are the options of the same names (see --help)."""
    routes = [
        tornado.web.url(r"/", HomeHandler, name="home"),
        tornado.web.url(r"/upload", FormUploadHandler, name="form_upload"),
        tornado.web.url(r"/upload/([^/]+)", PutUploadHandler, name="put_upload"),
        download := tornado.web.url(r"/uploads/([^/]+)/(orig|thumb)", DownloadHandler, name="download"),
        tornado.web.url(r"/healthz", HealthHandler, name="healthz"),
        tornado.web.url(r"/live", LiveHandler, name="live"),
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
        idle_timeout=idle_timeout,
        max_uploads=max_uploads,
        in_flight=InFlight(),
        abandoned_after=abandoned_after,
        decode_budget=DecodeBudget(decode_budget),
        cookie_secret=cookie_secret or secrets.token_hex(32),
        xsrf_cookies=True,  # every POST and PUT repeats the token of the visitor's _xsrf cookie
        cross_origin_protection=True,  # and comes, as the browser tells, from our own pages
        **live_settings(db, download.reverse, max_sockets, live_backlog, ping_interval),  # the feed, pings
        **settings,
    )


def main():
    """Check the options and the database, listen, fork if asked to, then serve."""
    # Tornado prints the whole of --help before it names an option it does not know.
    if unknown := [arg for arg in sys.argv[1:] if arg.startswith("-") and arg.lstrip("-").split("=")[0] not in options]:
        sys.exit(f"error: no such option: {unknown[0].split('=')[0]} (--help lists them)")
    try:
        options.parse_command_line()
    except (tornado.options.Error, ValueError, OSError) as error:  # e.g. --port=abc, or no such --config
        sys.exit(f"error: {error}")
    if options.debug and options.processes != 1:
        sys.exit("error: --debug reloads the code when it changes: it works with one process only")
    tornado.log.enable_pretty_logging(options)
    check_database(options.db_uri)  # once, before any fork
    # One secret for every process: what one signs, the others must accept.
    cookie_secret = options.cookie_secret or os.environ.get("COOKIE_SECRET") or secrets.token_hex(32)
    try:
        sockets = tornado.netutil.bind_sockets(options.port)
    except OSError as error:
        sys.exit(f"error: cannot listen on port {options.port}: {error.strerror}")
    log.info("serving on http://localhost:%d, database %r, up to %d open files a process",
             options.port, options.db_name, raise_descriptor_limit())
    parent_pipe = start_processes(options.processes, sockets) if options.processes != 1 else None
    asyncio.run(serve(options, make_app, sockets, cookie_secret, parent_pipe))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl+C while starting
        pass
