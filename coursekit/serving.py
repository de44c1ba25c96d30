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
async def stage_served(stage_app, stage, mongodb_uri, **settings):
    """The stage's make_app(db, **settings) served, on a database of its own on the
    MongoDB at `mongodb_uri`; yields a Client of it that has visited the home page, its
    `app` the Application served. At the end the server stops and the database is dropped.

    For the tests that share one stage (a module-scoped fixture, in the module's event
    loop): conftest's `serve` serves one for each test, on the test's database."""
    with database_of_its_own(mongodb_uri) as db_name:
        motor_client = MotorClient(mongodb_uri)
        try:
            app = stage_app.make_app(motor_client[db_name], **settings)
            async with served(app) as url:
                client = Client(url, motor_client[db_name], collections=upload_collections(stage))
                client.app = app
                await client.visit()
                yield client
        finally:
            motor_client.close()
