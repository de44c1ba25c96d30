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
# asynchronous code, run and timed, and the ground [part 1's lesson](../part1_basic/README.md)
# builds on.
#
# ## What you will learn
#
# 1. a blocking call against an asynchronous one, and what "blocking the event loop" looks like;
# 2. what a `Future` is, and how a coroutine drives it;
# 3. native coroutines (`async def`) against decorated ones (`@gen.coroutine`);
# 4. parallel work with `gen.multi` and `asyncio.gather`;
# 5. calling blocking code with `run_in_executor`;
# 6. interleaving: starting the next step before waiting for the last;
# 7. `tornado.queues` and the concurrent web crawler;
#
# then three exercises: a limit on concurrency with a `Semaphore`, a blocking call
# taken off the loop, and a `gather` that survives a failure.
#
# **An event loop is already running here.** Jupyter's Python kernel runs on an asyncio
# event loop, and Tornado's `IOLoop` is that same loop. So a cell can `await` at the
# top level, and anything we serve keeps answering between cells. Two things you
# would write in a script must not be written here: `asyncio.run(main())` refuses to
# start a second loop, and `IOLoop.current().run_sync()` stops the kernel's own loop.
#
# **How to use it.** Run the cells in order, then change what you like: any cell can
# be run again, and so can the whole notebook. The numbers worth varying are in the
# next cell, the *parameters* cell; change one and run the notebook again (Run > Run
# All Cells). Cells marked **Try it** are there to be edited and re-run. Each
# exercise has a check to run in the next cell, and a solution folded away below it
# (click the `...` to unfold it). The last cell stops what the notebook started.
# Timings depend on your machine and on what else it is doing: the figures quoted
# here were measured on a shared machine with 2 cores, and yours will differ a little.

# %% tags=["parameters"]
FETCHES = 5  # fetches of the slow page, in sections 1 and 4
SLOW_PAGE_SECONDS = 0.2  # how long the slow page takes to answer
DEADLOCK_TIMEOUT = 1.0  # seconds the blocking fetch of our own server waits, in section 1
CALLS = 20_000  # calls timed of each kind of coroutine, in section 3
BLOCKING_CALLS = 4  # blocking calls in section 5
BLOCKING_SECONDS = 0.25  # how long each of them holds its thread
WORKERS = 4  # threads of the executor in section 5
CHUNKS = 5  # chunks copied in section 6
CHUNK_SECONDS = 0.1  # to read one chunk, and again to write it
SITE_PAGES = 30  # pages of the site the crawler crawls, in section 7
PAGE_SECONDS = 0.05  # how long each of those pages takes to answer
CRAWLERS = 5  # workers of the concurrent crawl (against one)

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
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.queues import Queue

from coursekit import lab  # the course's toolkit: the Session that starts and stops things, the colours

# %% [markdown]
# ## A small web site to talk to
#
# No internet needed: we serve a site of our own on `127.0.0.1`. It has a slow page,
# `/slow?delay=0.2`, that answers after the delay (like a busy backend) and counts how
# many requests it is answering at once, and `SITE_PAGES` linked pages under `/site/`
# for the crawler at the end.
#
# The site runs on a thread of its own, with its own event loop, as a server on
# another machine would. Section 1 blocks this notebook's loop on purpose, and a site
# served by that same loop could not answer while it is blocked.
#
# `lab.Session` owns what the notebook starts. `Session.start()` first stops what the
# previous run started, so this cell can be run again at any time; the last cell
# stops it all.

# %%
class SlowHandler(tornado.web.RequestHandler):
    in_flight = most_in_flight = 0  # requests being answered now, and the most at once so far

    async def get(self):
        delay = float(self.get_argument("delay", "0.2"))
        SlowHandler.in_flight += 1
        SlowHandler.most_in_flight = max(SlowHandler.most_in_flight, SlowHandler.in_flight)
        try:
            await asyncio.sleep(delay)  # slow, but without blocking the site's loop
        finally:
            SlowHandler.in_flight -= 1
        self.write(f"answered after {delay} s\n")


class PageHandler(tornado.web.RequestHandler):
    """Page n links to pages 2n+1 and 2n+2, back home, and to a site elsewhere."""

    async def get(self, number):
        number = int(number or 0)
        if number >= SITE_PAGES:
            raise tornado.web.HTTPError(404)
        await asyncio.sleep(PAGE_SECONDS)
        children = [child for child in (2 * number + 1, 2 * number + 2) if child < SITE_PAGES]
        links = [f'<a href="/site/{child}#top">page {child}</a>' for child in children]
        links += ['<a href="/site/">home</a>', '<a href="https://www.tornadoweb.org/">Tornado</a>']
        self.write(f"<h1>Page {number}</h1>\n" + "\n".join(links))


session = await lab.Session.start()
site_url = await session.serve_in_thread("the site", tornado.web.Application(
    [(r"/slow", SlowHandler), (r"/site/(\d*)", PageHandler)],
    log_function=lambda handler: None,  # a site elsewhere: its log is not ours to read
))
print("The site serves at", site_url)

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
    """One panel per recording: a bar per piece of work, and a tick each time the loop was free."""
    figure, axes = plt.subplots(len(recordings), 1, sharex=True, squeeze=False, layout="constrained",
                                figsize=(8, 1.2 + 1.3 * len(recordings)))
    for ax, (name, recording) in zip(axes[:, 0], recordings.items()):
        rows = sorted({row for row, _, _ in recording.spans})
        for row, start, end in recording.spans:
            ax.barh(rows.index(row) + 1, end - start, left=start, height=0.7, color=lab.BLUE,
                    edgecolor="white", linewidth=0.8, label="_work")
        ax.plot(recording.ticks, [0] * len(recording.ticks), "|", color=lab.ORANGE, markersize=7, label="_tick")
        ax.set_yticks(range(len(rows) + 1), ["loop free", *rows], fontsize=8)
        ax.set_ylim(-0.7, len(rows) + 0.6)
        ax.set_xlim(left=0)
        ax.invert_yaxis()
        ax.set_title(f"{name}: {recording.total:.2f} s, loop stalled up to "
                     f"{recording.longest_stall * 1000:.0f} ms", loc="left", fontsize=9)
    axes[-1, 0].set_xlabel("time (seconds since the first piece of work started)")
    figure.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=lab.BLUE),
                           plt.Line2D([], [], marker="|", linestyle="", color=lab.ORANGE, markersize=9)],
                  labels=["a piece of work, from start to end", "the loop was free (a tick every 10 ms)"],
                  loc="outside lower center", fontsize=8, ncols=2)
    figure.suptitle(title)
    plt.show()


# %% [markdown]
# ## 1. A blocking call against an asynchronous one
#
# `urllib.request.urlopen` is blocking: the thread that calls it waits until the answer
# is there, and this thread is the one that runs the event loop. `FETCHES` fetches of a
# page that takes `SLOW_PAGE_SECONDS` (5 of 0.2 s with the defaults).
#
# **Predict, then run:** how long will they take, and how many times will the loop
# tick (once every 10 ms when it is free)?

# %%
URLS = [f"{site_url}/slow?delay={SLOW_PAGE_SECONDS}" for _ in range(FETCHES)]


def blocking_fetch(url):
    with urllib.request.urlopen(url) as response:
        return response.read()


with Recorder() as blocking:
    for number, url in enumerate(URLS):
        with blocking.span(f"fetch {number}"):
            blocking_fetch(url)
print(f"{len(URLS)} blocking fetches took {blocking.total:.2f} s "
      f"({len(URLS)} x {SLOW_PAGE_SECONDS} s = {len(URLS) * SLOW_PAGE_SECONDS:.2f} s); "
      f"the loop ticked {len(blocking.ticks)} times")

# %% [markdown]
# The sum of the delays, and not a single tick: while the thread waited, the loop could
# do nothing else. In a Tornado server that means no other request is served.
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
# The same time, since we wait for each response before asking for the next, but the
# loop ticked all along (about once every 10 ms): a server would have gone on serving
# everyone else.
#
# What if the blocking call goes to a server on *this* notebook's loop? The loop is the
# one waiting, so the server can never answer: a deadlock. Here is one, cut short after
# `DEADLOCK_TIMEOUT` seconds. (In a test or a notebook, talk to your own server with
# `AsyncHTTPClient`.)

# %%
own_url = await session.serve("a server on this loop", tornado.web.Application([(r"/slow", SlowHandler)]))
started = time.perf_counter()
try:
    urllib.request.urlopen(f"{own_url}/slow?delay=0", timeout=DEADLOCK_TIMEOUT)
except (TimeoutError, urllib.error.URLError) as error:
    print(f"No answer after {time.perf_counter() - started:.1f} s ({type(error).__name__}): "
          "the loop that should answer was busy waiting")
print("Asynchronously, the same server answers:", await async_fetch(f"{own_url}/slow?delay=0"))
await session.stop("a server on this loop")

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
    first = await async_fetch(f"{site_url}/slow?delay=0.1")
    second = await async_fetch(f"{site_url}/slow?delay=0.1")
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
#
# **Predict, then run:** after *calling* both (no `await` yet), which of the two has
# appended its name to `started`?

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
# coroutine).
#
# **Predict, then run:** the same `FETCHES` fetches, all started at once. How long?

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
     f"{FETCHES} fetches of a page that takes {SLOW_PAGE_SECONDS} s")

# %% [markdown]
# Top: the loop stalls for the whole time. Middle: the same time, but the loop is
# free. Bottom: the requests overlap, and the whole takes little more than one.
#
# **Try it:** how far does `gather` go? Change `how_many` and run the cell again.
# Up to 10 fetches take hardly longer than one; past that, the client's own limit
# shows: `AsyncHTTPClient` runs at most 10 requests at once (its `max_clients`) and
# queues the rest, so 30 take about three times as long as one.

# %%
how_many = 30
with Recorder() as many:
    await asyncio.gather(*(async_fetch(URLS[0]) for _ in range(how_many)))
print(f"{how_many} fetches at once: {many.total:.2f} s, where one takes {SLOW_PAGE_SECONDS} s")

# %% [markdown]
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
    for number in range(BLOCKING_CALLS):
        with inline.span(f"call {number}"):
            blocking_work(BLOCKING_SECONDS)


async def timed_in_executor(recorder, row, executor):
    with recorder.span(row):
        return await IOLoop.current().run_in_executor(executor, blocking_work, BLOCKING_SECONDS)


with ThreadPoolExecutor(max_workers=WORKERS) as executor, Recorder() as on_executor:
    await asyncio.gather(*(timed_in_executor(on_executor, f"call {n}", executor) for n in range(BLOCKING_CALLS)))

plot({"called inline": inline, f"run_in_executor, {WORKERS} threads": on_executor},
     f"{BLOCKING_CALLS} blocking calls of {BLOCKING_SECONDS} s")

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
async def read_chunk(recorder, number):
    with recorder.span("read"):
        await asyncio.sleep(CHUNK_SECONDS)  # a database or a socket would be here
    return None if number == CHUNKS else f"chunk {number}"


async def write_chunk(recorder, chunk):
    with recorder.span("write"):
        await asyncio.sleep(CHUNK_SECONDS)


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
print(f"read, then write: {step_by_step.total:.2f} s ({CHUNKS + 1} reads and {CHUNKS} writes, one after the other)")
print(f"interleaved: {interleaved.total:.2f} s (a read, then {CHUNKS} writes, each beside the next read)")
plot({"read, then write": step_by_step, "interleaved": interleaved},
     f"Copying {CHUNKS} chunks: {CHUNK_SECONDS} s to read one, {CHUNK_SECONDS} s to write one")

# %% [markdown]
# Read, then write: each chunk costs a read and a write, one after the other, and
# there is one more read than there are chunks (the one that finds the end).
# Interleaved: each write shares its time with the next read, so the copy takes
# about half as long: `CHUNKS + 1` steps instead of `2 * CHUNKS + 1`.
#
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


async def timed_crawl(concurrency):
    with Recorder() as recorder:
        fetched = await crawl(f"{site_url}/site/", concurrency, recorder)
    print(f"{concurrency} worker(s): {len(fetched)} pages in {recorder.total:.2f} s")
    return recorder


crawls = {f"{n} worker{'s' if n > 1 else ''}": await timed_crawl(n) for n in (1, CRAWLERS)}

# %%
plot(crawls, f"Crawling {SITE_PAGES} pages that take {PAGE_SECONDS} s each")

# %% [markdown]
# With several workers the crawl is several times faster: while one worker waits for a
# page, the others fetch theirs. Not `CRAWLERS` times: the site is a tree, so at the
# start the queue holds fewer URLs than there are workers, and some of them wait for
# work.
#
# **Try it:** change `workers` and run the cell again. Past a point, more workers add
# little: there are not enough pages in the queue to keep them all busy.

# %%
workers = 10
await timed_crawl(workers);

# %% [markdown]
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: at most three at once
#
# `asyncio.gather` starts everything at once. A polite client, or one talking to a
# database with a limited pool, keeps a limit. Complete `fetch_limited(urls, limit)`:
# fetch every URL with `async_fetch`, at most `limit` at a time, and return the bodies
# in the order of `urls`. An `asyncio.Semaphore(limit)` is the tool: `async with
# semaphore:` waits while `limit` coroutines are inside.

# %%
async def fetch_limited(urls, limit):
    return await asyncio.gather(*(async_fetch(url) for url in urls))  # no limit yet: your turn

# %%
async def check_exercise_1():
    urls = [f"{site_url}/slow?delay=0.2&n={n}" for n in range(8)]
    SlowHandler.most_in_flight = 0
    bodies = await fetch_limited(urls, 3)
    return lab.check("Exercise 1", [
        lab.expect("the bodies", bodies, [b"answered after 0.2 s\n"] * len(urls)),
        None if 1 < SlowHandler.most_in_flight <= 3 else
        f"the site answered {SlowHandler.most_in_flight} of them at once: at most 3, and more than 1, please",
    ])

await check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def fetch_limited(urls, limit):
    semaphore = asyncio.Semaphore(limit)

    async def fetch(url):
        async with semaphore:  # waits while `limit` fetches are under way
            return await async_fetch(url)

    return await asyncio.gather(*(fetch(url) for url in urls))

await check_exercise_1();

# %% [markdown]
# ### Exercise 2: take it off the loop
#
# `lookup_blocking(key)` stands for a library call that blocks for 0.2 s. The
# coroutine `lookup(key)` below calls it straight away, so it blocks the event loop
# for that long. Change `lookup` so that it returns the same result while the loop
# stays free: the blocking call must run on another thread.

# %%
def lookup_blocking(key):
    lookup_blocking.threads.append(threading.current_thread())
    time.sleep(0.2)
    return key.upper()


lookup_blocking.threads = []  # the threads it ran on


async def lookup(key):
    return lookup_blocking(key)  # runs on the loop's thread: your turn

# %%
async def check_exercise_2():
    lookup_blocking.threads = []
    result = await lookup("tornado")
    return lab.check("Exercise 2", [
        lab.expect('lookup("tornado")', result, "TORNADO"),
        "lookup_blocking() ran on the event loop's thread" if threading.main_thread() in lookup_blocking.threads
        else None,
    ])

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution: asyncio's default thread pool (or IOLoop.current().run_in_executor(None, ...))
async def lookup(key):
    return await asyncio.to_thread(lookup_blocking, key)

await check_exercise_2();

# %% [markdown]
# ### Exercise 3: a gather that survives a failure
#
# One failed fetch makes `asyncio.gather` raise, and the other results are lost.
# Complete `fetch_all_or_none(urls)`: fetch all the URLs at once, and return a list
# with the body of each page, or `None` where the fetch failed. (Look at
# `gather`'s `return_exceptions`.) The check asks for a page that does not exist.

# %%
async def fetch_all_or_none(urls):
    return await asyncio.gather(*(async_fetch(url) for url in urls))  # your turn

# %%
async def check_exercise_3():
    urls = [f"{site_url}/slow?delay=0", f"{site_url}/site/999", f"{site_url}/slow?delay=0"]
    try:
        got = await fetch_all_or_none(urls)
    except Exception as error:
        got = f"it raised {type(error).__name__}: {error}"
    wanted = [await async_fetch(urls[0]), None, await async_fetch(urls[2])]
    return lab.check("Exercise 3", [lab.expect("fetch_all_or_none(urls)", got, wanted)])

await check_exercise_3();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution
async def fetch_all_or_none(urls):
    results = await asyncio.gather(*(async_fetch(url) for url in urls), return_exceptions=True)
    return [None if isinstance(result, Exception) else result for result in results]

await check_exercise_3();

# %% [markdown]
# ## Recap
#
# - An `await` hands the loop back until a future is done: that is how one thread
#   serves many requests.
# - Anything that blocks stalls *everything* the loop serves, and a blocking call to
#   a server on the same loop never returns. Use asynchronous libraries (Motor,
#   `AsyncHTTPClient`), or `run_in_executor` for blocking ones.
# - A native coroutine does nothing until it is awaited or scheduled; a
#   `@gen.coroutine` starts when called.
# - Start work first, wait later: `gather`/`gen.multi` for independent work,
#   interleaving for pipelines, a `Queue` and workers for a stream of work, and a
#   `Semaphore` when there must be a limit.
#
# ## Review questions
#
# 1. Five awaited fetches of a 0.2 s page, one after the other: why do they take as
#    long as five blocking ones, and what is better about them all the same?
# 2. Why did `urlopen` of a server served in this kernel time out, when the same
#    server answered `AsyncHTTPClient` at once?
# 3. You call `native()` and never await it. What has run?
# 4. When does `run_in_executor` make blocking work faster, and when does it only keep
#    the loop free?
# 5. In the interleaved copy, why is the next read started with `ensure_future`
#    rather than awaited?
#
# <details><summary>Answers</summary>
#
# 1. Each waits for its response before the next starts, so the delays add up; but
#    while waiting, the loop was free to serve others (it ticked all along).
# 2. The loop that should have answered was the thread blocked in `urlopen`.
# 3. Nothing: the coroutine object was created, its body never started (Python warns
#    "coroutine was never awaited" when it is thrown away).
# 4. Faster when calls can overlap (they wait on I/O, or release the GIL) and the pool
#    has threads for them; pure-Python computing holds the GIL and only moves off the loop.
# 5. Awaiting it would wait for the read before the write: the two would not overlap.
#
# </details>
#
# ## Stop everything
#
# The last cell stops the site and anything else this notebook started. Running it
# twice is fine.

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [the course's README](../README.md) · Next: [part 1's lesson](../part1_basic/README.md),
# then [notebook 02, inside GridFS](02_inside_gridfs.ipynb) · All notebooks: [README](README.md)
