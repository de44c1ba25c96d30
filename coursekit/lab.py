"""What the notebooks share: a Session that owns what a notebook starts, the plots'
colours, and the checks of the exercises. A notebook imports it as
`from coursekit import lab`; for HTTP it uses coursekit.clients, as the tests do.

A notebook runs in a kernel that outlives its cells: a cell run twice starts its
server twice, and a server nobody stops goes on listening. So everything a
notebook starts (servers, clients, threads, databases, folders) is started
through one Session, under a name:

    session = await lab.Session.start(database=True)   # the setup cell
    base_url = await session.serve("part 1", app)        # starting "part 1" again replaces it
    ...
    await session.close()                                # the last cell; twice is fine

`Session.start()` closes the session the kernel started before, if any, so the
setup cell can be run again at any time, and so can the whole notebook.
"""

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import tempfile
import threading
import uuid
from pathlib import Path

from .database import redact, scratch_db
from .serving import served

# Okabe and Ito's palette, which readers with any common colour blindness tell apart.
BLUE, ORANGE, SKY, GREEN, VERMILLION, PURPLE, GREY = (
    "#0072B2", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#777777")
PALETTE = (BLUE, ORANGE, SKY, GREEN, VERMILLION, PURPLE, GREY)
# The plots compare a way that makes everyone wait with one that does not.
BAD, GOOD = VERMILLION, BLUE


class Session:
    """Everything a notebook has started, each under a name, closed in one call."""

    latest = None  # the session started last in this kernel

    def __init__(self):
        self._closers = {}  # name -> a function that stops it (its result awaited, if need be)
        self.uri = self.db_name = None

    @classmethod
    async def start(cls, database=False):
        """Close the session started before, if any; start a new one, with a database
        if asked: $MONGODB_URI when set, else the embedded database in a temporary folder."""
        if cls.latest is not None:
            await cls.latest.close()
        session = cls.latest = cls()
        if database:
            session.start_database()
        return session

    def start_database(self):
        stack = contextlib.ExitStack()
        self.uri = stack.enter_context(scratch_db())
        if "MONGODB_URI" not in os.environ:  # else the database is not ours to stop
            self._closers["the embedded database"] = stack.close
        self.db_name = f"notebook_{uuid.uuid4().hex[:8]}"  # ours alone, dropped by close()
        print("The database:", redact(self.uri), "| our database:", self.db_name)

    async def keep(self, name, thing, close):
        """Own `thing` under `name`, stopped by `close()`. What had that name is stopped
        first, with whatever was started after it (it may depend on it)."""
        await self.stop(name)
        self._closers[name] = close
        return thing

    async def enter(self, name, context):
        """Enter `context`, a context manager (async or not), and own it under `name`:
        it is exited when `name` is stopped. Returns what it gives."""
        await self.stop(name)
        stack = contextlib.AsyncExitStack()
        if hasattr(context, "__aenter__"):
            thing = await stack.enter_async_context(context)
        else:
            thing = stack.enter_context(context)
        return await self.keep(name, thing, stack.aclose)

    async def stop(self, name):
        """Stop what `name` names, if anything, and first what was started after it."""
        if name in self._closers:
            names = list(self._closers)
            for later in reversed(names[names.index(name):]):
                await self._stop_one(later)

    async def _stop_one(self, name):
        if inspect.isawaitable(result := self._closers.pop(name)()):
            await result

    async def close(self):
        """Stop everything, the last started first. Closing twice is fine."""
        if not self._closers:
            print("Nothing left to stop.")
            return
        names = list(reversed(self._closers))
        for name in names:
            await self._stop_one(name)
        print("Stopped:", ", ".join(names) + ".")

    async def motor_client(self, name="the Motor client"):
        """A MotorClient of the database, closed by close() after it drops our databases."""
        from motor.motor_tornado import MotorClient

        client = MotorClient(self.uri, serverSelectionTimeoutMS=3000)

        async def drop_and_close():
            try:
                for db_name in await client.list_database_names():
                    if db_name.startswith(self.db_name):
                        await client.drop_database(db_name)
            finally:
                client.close()

        return await self.keep(name, client, drop_and_close)

    async def serve(self, name, app, **server_options):
        """Serve `app` from this kernel's event loop on a free port of 127.0.0.1
        (coursekit.serving.served, as the tests serve a stage); its URL."""
        return await self.enter(name, served(app, **server_options))

    async def serve_in_thread(self, name, app):
        """Serve `app` from a thread with an event loop of its own, as a server on another
        machine would be: it answers even while this kernel's loop is blocked. Its URL."""
        await self.stop(name)
        started = concurrent.futures.Future()  # the thread's (URL, event loop, event that stops it)

        async def serve():
            async with served(app) as url:
                stopping = asyncio.Event()
                started.set_result((url, asyncio.get_running_loop(), stopping))
                await stopping.wait()

        thread = threading.Thread(target=asyncio.run, args=[serve()], name=name, daemon=True)
        thread.start()
        url, loop, stopping = started.result()

        def close():
            loop.call_soon_threadsafe(stopping.set)
            thread.join()

        return await self.keep(name, url, close)

    async def temporary_folder(self, name="the temporary folder"):
        """A folder of our own, deleted with all it holds by close()."""
        return Path(await self.enter(name, tempfile.TemporaryDirectory(prefix="notebook-")))


# --- Exercises ---

SOLVED, NOT_YET = "✔ solved", "✘ not yet"


def expect(what, got, wanted):
    """None if `got == wanted`, else a line saying what is wrong."""
    return None if got == wanted else f"{what}: got {short(got)}, expected {short(wanted)}"


def short(value, limit=100):
    """repr(value), cut short when long, with its length."""
    text = repr(value)
    if len(text) <= limit or not hasattr(value, "__len__"):
        return text
    return f"{text[:limit - 40]}... ({len(value):,} {'bytes' if isinstance(value, bytes) else 'items'})"


def check(exercise, problems):
    """Print whether `exercise` is solved: `problems` lists what is wrong (None: right)."""
    problems = [problem for problem in problems if problem]
    print(f"{exercise}: {NOT_YET if problems else SOLVED}")
    for problem in problems:
        print("  -", problem)
    return not problems
