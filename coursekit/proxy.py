"""A TCP proxy that can be paused: put between a stage and its database, it makes
every database operation hang, for as long as a test needs, then go on as if
nothing happened (nothing is lost: what comes while paused is held, then passed on)."""

import asyncio
import contextlib
import threading

PIECE = 64 * 1024  # how much is passed on at a time


class PausableProxy:
    """Listens on a free port of 127.0.0.1 (`port`) and passes every connection on to
    host:port, both ways, until pause(); resume() lets it all through again. `held`
    counts the bytes waiting to be passed on.

    Used as a context manager, it runs on a thread of its own, with its own event
    loop: a blocking client (PyMongo) works through it as well as an asynchronous one,
    even one that blocks the loop of the code under test for a moment."""

    def __init__(self, host, port):
        self.target = host, port
        self.held = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._connections = set()

    def __enter__(self):
        self._thread.start()
        self.port = self._run(self._start())
        return self

    def __exit__(self, *exc):
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def pause(self):
        """Hold everything from now on, in both directions."""
        self._run(self._set_open(False))

    def resume(self):
        """Pass on what was held, and all that comes next."""
        self._run(self._set_open(True))

    def _run(self, coroutine):
        """Run `coroutine` on the proxy's loop, and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _set_open(self, is_open):
        if is_open:
            self._open.set()
        else:
            self._open.clear()

    async def _start(self):
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _stop(self):
        self._open.set()
        self._server.close()
        for writer in {writer for connection in self._connections for writer in connection}:
            writer.close()
        await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()}, return_exceptions=True)

    async def _connect(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        connection = (writer, upstream_writer)
        self._connections.add(connection)
        await asyncio.gather(self._pass(reader, upstream_writer), self._pass(upstream_reader, writer))
        self._connections.discard(connection)

    async def _pass(self, reader, writer):
        """Pass on what `reader` reads to `writer`, until either side closes."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(PIECE):
                if not self._open.is_set():
                    self.held += len(data)
                    await self._open.wait()
                    self.held -= len(data)
                writer.write(data)
                await writer.drain()
        writer.close()
