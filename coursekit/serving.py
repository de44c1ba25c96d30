"""A Tornado application served in this process, over real HTTP: any app, or a stage
on a database of its own."""

import contextlib

from motor.motor_tornado import MotorClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .clients import Client, upload_collections
from .database import database_of_its_own


@contextlib.asynccontextmanager
async def served(app, **server_options):
    """`app` served on a free port of 127.0.0.1 by this process's event loop; yields its
    base URL. At the end the server stops listening and closes its connections."""
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, **server_options)
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()


@contextlib.asynccontextmanager
async def stage_client(stage_app, stage, db, visit=True, server_options=None, **settings):
    """The stage's make_app(db, **settings) served (`server_options` go to Tornado's
    HTTPServer); yields a Client of it, its `app` the Application served, that has
    visited the home page unless `visit=False`."""
    app = stage_app.make_app(db, **settings)
    async with served(app, **(server_options or {})) as url:
        client = Client(url, db, collections=upload_collections(stage))
        client.app = app
        if visit:
            await client.visit()
        yield client


@contextlib.asynccontextmanager
async def stage_served(stage_app, stage, mongodb_uri, **settings):
    """stage_client() on a database of its own on the MongoDB at `mongodb_uri`, dropped
    at the end.

    For the tests that share one stage (a module-scoped fixture, in the module's event
    loop): conftest's `serve` serves one for each test, on the test's database."""
    with database_of_its_own(mongodb_uri) as db_name:
        motor_client = MotorClient(mongodb_uri)
        try:
            async with stage_client(stage_app, stage, motor_client[db_name], **settings) as client:
                yield client
        finally:
            motor_client.close()
