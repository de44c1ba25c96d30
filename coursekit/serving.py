"""A Tornado application served in this process, over real HTTP."""

import contextlib

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets


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
