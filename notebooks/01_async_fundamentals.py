# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Async fundamentals
#
# **Stage: the fundamentals, before part 1.** No database yet: just Tornado, asyncio
# and a small web site served inside this notebook. This is the material of the
# [Tornado User's Guide](https://www.tornadoweb.org/en/stable/guide.html) on
# asynchronous code, run and timed:
#
# 1. a blocking call against an asynchronous one, and what "blocking the event loop" looks like;
# 2. what a `Future` is, and how a coroutine drives it;
# 3. native coroutines (`async def`) against decorated ones (`@gen.coroutine`);
# 4. parallel work with `gen.multi` and `asyncio.gather`;
# 5. calling blocking code with `run_in_executor`;
# 6. interleaving: starting the next step before waiting for the last;
# 7. `tornado.queues` and the concurrent web crawler.
#
# **An event loop is already running here.** Jupyter's Python kernel runs on an asyncio
# event loop, and Tornado's `IOLoop` is that same loop. So a cell can `await` at the
# top level, and anything we serve keeps answering between cells. Two things you
# would write in a script must not be written here: `asyncio.run(main())` refuses to
# start a second loop, and `IOLoop.current().run_sync()` stops the kernel's own loop.
#
# Run the cells in order. The last cell stops the servers this notebook starts.

# %%
import asyncio
import contextlib
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

import matplotlib.pyplot as plt
import tornado.concurrent
import tornado.web
from tornado import gen
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.queues import Queue

# %% [markdown]
# ## A small web site to talk to
#
# No internet needed: we serve a site of our own on `127.0.0.1`. It has a slow page,
# `/slow?delay=0.2`, that answers after the delay (like a busy backend), and 30 linked
# pages under `/site/` for the crawler at the end.
#
# The site runs on a thread of its own, with its own event loop, as a server on
# another machine would. Section 1 blocks this notebook's loop on purpose, and a site
# served by that same loop could not answer while it is blocked.

# %%
SITE_PAGES = 30
PAGE_DELAY = 0.05  # seconds each page of the site takes to answer


class SlowHandler(tornado.web.RequestHandler):
    async def get(self):
        delay = float(self.get_argument("delay", "0.2"))
        await asyncio.sleep(delay)  # slow, but without blocking the site's loop
        self.write(f"answered after {delay} s\n")


class PageHandler(tornado.web.RequestHandler):
    """Page n links to pages 2n+1 and 2n+2, back home, and to a site elsewhere."""

    async def get(self, number):
        number = int(number or 0)
        if number >= SITE_PAGES:
            raise tornado.web.HTTPError(404)
        await asyncio.sleep(PAGE_DELAY)
        children = [child for child in (2 * number + 1, 2 * number + 2) if child < SITE_PAGES]
        links = [f'<a href="/site/{child}#top">page {child}</a>' for child in children]
        links += ['<a href="/site/">home</a>', '<a href="https://www.tornadoweb.org/">Tornado</a>']
        self.write(f"<h1>Page {number}</h1>\n" + "\n".join(links))


class ServerThread:
    """Serves a Tornado application on a free port of 127.0.0.1, from a thread
    with an event loop of its own, until stop()."""

    def __init__(self, app):
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=[self._serve(app)], daemon=True)
        self._thread.start()
        self._ready.wait()

    async def _serve(self, app):
        [sock] = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets([sock])
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stopping.wait()
        server.stop()
        await server.close_all_connections()

    def stop(self):
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()


site = ServerThread(tornado.web.Application([
    (r"/slow", SlowHandler),
    (r"/site/(\d*)", PageHandler),
]))
print("The site serves at", site.url)

# %% [markdown]
# ## Two tools to watch the event loop
#
# A `Recorder` times pieces of work (a bar each, in the plots below), and meanwhile
# asks this notebook's event loop to run a tiny callback every 10 ms. The loop runs
# it only when it is free: a gap in those ticks is a time when something blocked it.

# %%
class Recorder:
    """Times pieces of work, and ticks every 10 ms while the event loop is free."""

    def __init__(self, tick=0.01):
        self.tick = tick

    def __enter__(self):
        self.origin, self.spans, self.ticks = time.perf_counter(), [], []
        self._timer = PeriodicCallback(lambda: self.ticks.append(self.now()), self.tick * 1000)
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.stop()
        self.total = self.now()

    def now(self):
        return time.perf_counter() - self.origin

    @contextlib.contextmanager
    def span(self, row):
        """Time the work done inside `with recorder.span(row):`, on that row of the plot."""
        start = self.now()
        try:
            yield
        finally:
            self.spans.append((row, start, self.now()))

    @property
    def longest_stall(self):
        """The longest time the loop went without ticking, in seconds."""
        times = [0, *self.ticks, self.total]
        return max(later - earlier for earlier, later in zip(times, times[1:]))


def plot(recordings, title):
    """One panel per recording: a bar per piece of work, and a green tick each time the loop was free."""
    figure, axes = plt.subplots(len(recordings), 1, sharex=True, squeeze=False,
                                figsize=(8, 0.6 + 1.3 * len(recordings)))
    for ax, (name, recording) in zip(axes[:, 0], recordings.items()):
        rows = sorted({row for row, _, _ in recording.spans})
        for row, start, end in recording.spans:
            ax.barh(rows.index(row) + 1, end - start, left=start, height=0.7, color="tab:blue",
                    edgecolor="white", linewidth=0.8)
        ax.plot(recording.ticks, [0] * len(recording.ticks), "|", color="tab:green", markersize=7)
        ax.set_yticks(range(len(rows) + 1), ["loop free", *rows], fontsize=8)
        ax.set_ylim(-0.7, len(rows) + 0.6)
        ax.set_xlim(left=0)
        ax.invert_yaxis()
        ax.set_title(f"{name}: {recording.total:.2f} s, loop stalled up to "
                     f"{recording.longest_stall * 1000:.0f} ms", loc="left", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    figure.suptitle(title)
    figure.tight_layout()
    plt.show()


# %% [markdown]
# ## 1. A blocking call against an asynchronous one
#
# `urllib.request.urlopen` is blocking: the thread that calls it waits until the answer
# is there, and this thread is the one that runs the event loop. Five fetches of a page
# that takes 0.2 s:

# %%
URLS = [f"{site.url}/slow?delay=0.2" for _ in range(5)]


def blocking_fetch(url):
    with urllib.request.urlopen(url) as response:
        return response.read()


with Recorder() as blocking:
    for number, url in enumerate(URLS):
        with blocking.span(f"fetch {number}"):
            blocking_fetch(url)
print(f"{len(URLS)} blocking fetches took {blocking.total:.2f} s; the loop ticked {len(blocking.ticks)} times")

# %% [markdown]
# One second, and not a single tick: while the thread waited, the loop could do
# nothing else. In a Tornado server that means no other request is served.
#
# `AsyncHTTPClient.fetch()` returns at once, with a `Future` for the response. `await`
# suspends our coroutine until the future is done, and hands the loop back meanwhile:

# %%
async def async_fetch(url):
    response = await AsyncHTTPClient().fetch(url)
    return response.body


with Recorder() as one_by_one:
    for number, url in enumerate(URLS):
        with one_by_one.span(f"fetch {number}"):
            await async_fetch(url)
print(f"{len(URLS)} awaited fetches took {one_by_one.total:.2f} s; the loop ticked {len(one_by_one.ticks)} times")

# %% [markdown]
# Still one second, since we wait for each response before asking for the next, but the
# loop ticked all along: a server would have gone on serving everyone else.
#
# What if the blocking call goes to a server on *this* notebook's loop? The loop is the
# one waiting, so the server can never answer: a deadlock. Here is one, cut short by a
# timeout. (In a test or a notebook, talk to your own server with `AsyncHTTPClient`.)

# %%
[own_socket] = bind_sockets(0, "127.0.0.1")
own_server = HTTPServer(tornado.web.Application([(r"/slow", SlowHandler)]))
own_server.add_sockets([own_socket])
own_url = f"http://127.0.0.1:{own_socket.getsockname()[1]}/slow?delay=0"

started = time.perf_counter()
try:
    urllib.request.urlopen(own_url, timeout=1)
except (TimeoutError, urllib.error.URLError) as error:
    print(f"No answer after {time.perf_counter() - started:.1f} s ({type(error).__name__}): "
          "the loop that should answer was busy waiting")
print("Asynchronously, the same server answers:", await async_fetch(own_url))
own_server.stop()

# %% [markdown]
# ## 2. What a Future is, and how a coroutine drives it
#
# A `Future` is a placeholder for a result that is not there yet. Someone sets the
# result later; whoever awaits the future is resumed then. Tornado's `Future` *is*
# asyncio's:

# %%
loop = asyncio.get_running_loop()
future = loop.create_future()
print("done?", future.done())
loop.call_later(0.1, future.set_result, "the answer")  # someone sets it, 0.1 s from now
print("awaited:", await future, "| done?", future.done())
print("tornado.concurrent.Future is asyncio.Future:", tornado.concurrent.Future is asyncio.Future)

# %% [markdown]
# A coroutine is a function that can pause. Calling it runs nothing yet: it returns a
# coroutine object. Each `send(None)` runs it to its next pause, where it hands out the
# future it waits for; when that future is done, the next `send` resumes it, and when
# the coroutine returns, `send` raises `StopIteration` carrying the return value.
# Let's be the event loop, by hand:

# %%
async def double(future):
    value = await future
    return 2 * value


waiting_for = loop.create_future()
coroutine = double(waiting_for)
handed_out = coroutine.send(None)  # runs up to `await future`
print("the coroutine waits for our future:", handed_out is waiting_for)
waiting_for.set_result(21)
try:
    coroutine.send(None)  # resumes it: `await` returns 21
except StopIteration as finished:
    print("it returned", finished.value)


# %% [markdown]
# That is all an asyncio `Task` does, over and over: step the coroutine, and when it
# hands out a future, step it again once that future is done. A driver in miniature
# (a real `Task` also passes exceptions in, and supports cancellation):

# %%
def drive(coroutine):
    """Run `coroutine` on the event loop; return a future for its result."""
    result = loop.create_future()

    def step(_=None):
        try:
            awaited = coroutine.send(None)
        except StopIteration as finished:
            result.set_result(finished.value)
        else:
            awaited.add_done_callback(step)  # come back when it is done

    step()
    return result


async def two_fetches():
    first = await async_fetch(f"{site.url}/slow?delay=0.1")
    second = await async_fetch(f"{site.url}/slow?delay=0.1")
    return first + second


print((await drive(two_fetches())).decode())

# %% [markdown]
# ## 3. Native and decorated coroutines
#
# Before Python 3.5 had `async def`, Tornado made coroutines out of generators with
# the `@gen.coroutine` decorator, and `yield` where we now write `await`. The 2014
# articles this course follows are written that way, and you will meet it in older
# code. Both kinds interoperate:

# %%
@gen.coroutine
def decorated_fetch(url):
    response = yield AsyncHTTPClient().fetch(url)
    return response.body  # Python 2 needed `raise gen.Return(response.body)`


async def native_fetch(url):
    response = await AsyncHTTPClient().fetch(url)
    return response.body


print(await decorated_fetch(URLS[0]))
print(await native_fetch(URLS[0]))

# %% [markdown]
# The User's Guide lists the differences. The one that surprises people: calling a
# decorated coroutine starts it at once and returns a `Future`; calling a native one
# returns a coroutine object that does nothing until it is awaited (or scheduled with
# `asyncio.create_task` or `IOLoop.current().spawn_callback`).

# %%
started = []


async def native():
    started.append("native")
    await asyncio.sleep(0)


@gen.coroutine
def decorated():
    started.append("decorated")
    yield gen.moment


native_call, decorated_call = native(), decorated()
print("after calling both, started:", started)
print("they returned", type(native_call).__name__, "and", type(decorated_call).__name__)
await asyncio.gather(native_call, decorated_call)
print("after awaiting both, started:", started)


# %% [markdown]
# Native coroutines are also faster, since there is no decorator in between and no
# `Future` for each call:

# %%
async def native_add(a, b):
    return a + b


@gen.coroutine
def decorated_add(a, b):
    return a + b


CALLS = 20_000
for add in (native_add, decorated_add):
    start = time.perf_counter()
    for _ in range(CALLS):
        await add(1, 2)
    print(f"{add.__name__}: {(time.perf_counter() - start) / CALLS * 1e6:.2f} µs a call")

# %% [markdown]
# ## 4. Parallel work: `gen.multi` and `asyncio.gather`
#
# To wait for several things at once, start them all, then wait for all of them.
# `asyncio.gather(*awaitables)` does that and returns their results in order;
# Tornado's `gen.multi` takes a list or a dict (what `yield [a, b]` did in a decorated
# coroutine):

# %%
async def timed_fetch(recorder, row, url):
    with recorder.span(row):
        return await async_fetch(url)


with Recorder() as gathered:
    bodies = await asyncio.gather(*(timed_fetch(gathered, f"fetch {n}", url) for n, url in enumerate(URLS)))
print(f"asyncio.gather: {len(bodies)} fetches in {gathered.total:.2f} s")

with Recorder() as multi:
    by_name = await gen.multi({f"fetch {n}": timed_fetch(multi, f"fetch {n}", url) for n, url in enumerate(URLS)})
print(f"gen.multi: {len(by_name)} fetches in {multi.total:.2f} s, results keyed by", list(by_name)[:2], "...")

# %%
plot({"blocking fetches": blocking, "awaited one by one": one_by_one, "asyncio.gather": gathered},
     "Five fetches of a page that takes 0.2 s")

# %% [markdown]
# Top: the loop stalls for the whole second. Middle: the same second, but the loop is
# free. Bottom: the five requests overlap, and the whole takes little more than one.
#
# ## 5. Calling blocking code with `run_in_executor`
#
# Some work has no asynchronous version: a library that blocks (a synchronous driver,
# image decoding in part 2, `time.sleep` here standing in for both). Run it on a thread
# pool with `IOLoop.current().run_in_executor(executor, function, *args)`, which
# returns a future. The loop stays free, and independent calls can even overlap.

# %%
def blocking_work(seconds):
    time.sleep(seconds)  # stands for any call that holds its thread
    return seconds


with Recorder() as inline:
    for number in range(4):
        with inline.span(f"call {number}"):
            blocking_work(0.25)


async def timed_in_executor(recorder, row, executor):
    with recorder.span(row):
        return await IOLoop.current().run_in_executor(executor, blocking_work, 0.25)


with ThreadPoolExecutor(max_workers=4) as executor, Recorder() as on_executor:
    await asyncio.gather(*(timed_in_executor(on_executor, f"call {n}", executor) for n in range(4)))

plot({"called inline": inline, "run_in_executor, 4 threads": on_executor},
     "Four blocking calls of 0.25 s")

# %% [markdown]
# `await asyncio.to_thread(blocking_work, 0.25)` does the same on asyncio's default
# thread pool. Threads help with work that waits (I/O, `sleep`) or that releases the
# GIL (Pillow and hashlib do, for much of their work); pure-Python computing holds
# the GIL, and needs a `ProcessPoolExecutor` to run in parallel.
#
# ## 6. Interleaving
#
# Sometimes you need the result of one step before the next, but not before *all* of
# the next: copying a file, you must read a chunk before writing it, but you can read
# chunk n+1 while chunk n is being written. The User's Guide's example:
#
# ```python
# fetch_future = self.fetch_next_chunk()
# while True:
#     chunk = yield fetch_future
#     if chunk is None: break
#     self.write(chunk)
#     fetch_future = self.fetch_next_chunk()
#     yield self.flush()
# ```
#
# With native coroutines the next read must be *started* explicitly, with
# `asyncio.ensure_future` (or `create_task`): remember section 3, a native coroutine
# does nothing until something runs it.

# %%
CHUNKS = 5


async def read_chunk(recorder, number):
    with recorder.span("read"):
        await asyncio.sleep(0.1)  # a database or a socket would be here
    return None if number == CHUNKS else f"chunk {number}"


async def write_chunk(recorder, chunk):
    with recorder.span("write"):
        await asyncio.sleep(0.1)


async def copy_step_by_step(recorder):
    number = 0
    while (chunk := await read_chunk(recorder, number)) is not None:
        await write_chunk(recorder, chunk)
        number += 1


async def copy_interleaved(recorder):
    number = 0
    next_chunk = asyncio.ensure_future(read_chunk(recorder, number))
    while (chunk := await next_chunk) is not None:
        number += 1
        next_chunk = asyncio.ensure_future(read_chunk(recorder, number))  # read the next one ...
        await write_chunk(recorder, chunk)  # ... while this one is written


with Recorder() as step_by_step:
    await copy_step_by_step(step_by_step)
with Recorder() as interleaved:
    await copy_interleaved(interleaved)
plot({"read, then write": step_by_step, "interleaved": interleaved},
     f"Copying {CHUNKS} chunks: 0.1 s to read one, 0.1 s to write one")

# %% [markdown]
# ## 7. Queues and the concurrent web crawler
#
# `tornado.queues.Queue` is a queue for coroutines: `await queue.get()` waits without
# blocking the loop, and `await queue.join()` waits until every item taken has been
# marked done. Here is the User's Guide's crawler, nearly as it is there: a number of
# worker coroutines take URLs from the queue, fetch the page, and put the links they
# find back on it. It follows only links under the base URL, so the link to
# tornadoweb.org is never fetched. Each worker records its fetches on a row of its own.

# %%
def remove_fragment(url):
    pure_url, fragment = urldefrag(url)
    return pure_url


def get_links(html):
    class URLSeeker(HTMLParser):
        def __init__(self):
            HTMLParser.__init__(self)
            self.urls = []

        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href")
            if href and tag == "a":
                self.urls.append(href)

    url_seeker = URLSeeker()
    url_seeker.feed(html)
    return url_seeker.urls


async def get_links_from_url(url):
    """Download the page at `url` and parse it for links (absolute, without fragments)."""
    response = await AsyncHTTPClient().fetch(url)
    html = response.body.decode(errors="ignore")
    return [urljoin(url, remove_fragment(new_url)) for new_url in get_links(html)]


async def crawl(base_url, concurrency, recorder):
    q = Queue()
    fetching, fetched, dead = set(), set(), set()

    async def fetch_url(current_url):
        if current_url in fetching:
            return
        fetching.add(current_url)
        urls = await get_links_from_url(current_url)
        fetched.add(current_url)
        for new_url in urls:
            # Only follow links beneath the base URL
            if new_url.startswith(base_url):
                await q.put(new_url)

    async def worker(number):
        async for url in q:
            if url is None:
                return
            try:
                with recorder.span(f"worker {number}"):
                    await fetch_url(url)
            except Exception as e:
                print(f"Exception: {e} {url}")
                dead.add(url)
            finally:
                q.task_done()

    await q.put(base_url)
    # Start the workers, and wait for the queue to be empty and every URL processed.
    workers = gen.multi([worker(number) for number in range(concurrency)])
    await q.join(timeout=timedelta(seconds=60))
    assert fetching == (fetched | dead)
    for _ in range(concurrency):  # tell each worker to stop
        await q.put(None)
    await workers
    return fetched


crawls = {}
for concurrency in (1, 5):
    with Recorder() as recorder:
        fetched = await crawl(f"{site.url}/site/", concurrency, recorder)
    crawls[f"{concurrency} worker{'s' if concurrency > 1 else ''}"] = recorder
    print(f"{concurrency} worker(s): {len(fetched)} pages in {recorder.total:.2f} s")
assert len(fetched) == SITE_PAGES

# %%
plot(crawls, f"Crawling {SITE_PAGES} pages that take {PAGE_DELAY} s each")

# %% [markdown]
# With five workers the crawl is several times faster: while one worker waits for a
# page, the others fetch theirs. Not five times: the site is a tree, so at the start
# the queue holds fewer URLs than there are workers, and some of them wait for work.
# (The very short bars are links to pages already fetched, skipped at once.)
#
# ## What to take into part 1
#
# - An `await` hands the loop back until a future is done: that is how one thread
#   serves many requests.
# - Anything that blocks stalls *everything* the loop serves. Use asynchronous
#   libraries (Motor, `AsyncHTTPClient`), or `run_in_executor` for blocking ones.
# - Start work first, wait later: `gather`/`gen.multi` for independent work,
#   interleaving for pipelines, a `Queue` and workers for a stream of work.
#
# Part 1 puts this to work: Tornado handlers with `async def`, storing images in
# MongoDB GridFS through Motor. The last cell stops the site:

# %%
site.stop()
print("The site is stopped.")
