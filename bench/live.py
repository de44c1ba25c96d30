"""Live pages: ten thousand open WebSockets, an upload every second, and how long until every page is told.

    python bench/live.py              # 10,000 sockets on one process, then 5,000 on each of two; 60 uploads, 1 a second
    python bench/live.py --quick      # 300 sockets, 3 uploads: checks the script works
    python bench/live.py --small      # the same against part5_live/small/change_stream.py

Each server is the stage run as a program (`python part5_live/app.py`, through this
script, which raises its limit of open files and quiets its access log), on a
database of its own. Two processes are two copies on two ports, each holding half
the sockets: an upload stored through the first reaches the second's pages through
its change stream, as it would on another host.

The clients are raw sockets, spread over a few processes of this script (`--workers`):
a handshake, then frames parsed as they come, pings answered, and for each upload
the time its event reached each socket. An upload's time is the database's: the
`wallTime` of its insert, as this script's own change stream reports it (it falls
back to when the upload was sent). Printed for each run: the server's memory once
every socket is open (minus what it held before) and that per socket; for each
upload, the time until the first, the median and the last socket had its event,
as p50 and p99 over the uploads; errors (a socket closed, refused, or an event
missed). Then the same with the other way to fan out (framing once, or a
write_message() loop), with permessage-deflate negotiated (memory per socket), and
with 100 more sockets that never read: the server's memory as the uploads go on.
"""

import argparse
import base64
import contextlib
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

from coursekit.images import image_bytes
from coursekit.processes import Program, free_port
from coursekit.stages import ROOT
from harness import MB, Measured, command_line, database, median, percentile, source_path, visitor

TARGETS = {"bytes a socket": 12_000, "last p99 ms": 200, "errors": 0}  # issue 24, for one process
KINDS = {  # what is measured: where its pages listen, how an upload is made, what the database holds of it
    "part5": {"app": ROOT / "part5_live" / "app.py", "socket": "/live", "collection": "uploads", "field": "filename",
              "args": ["--max_sockets=20000"]},  # 10,000 sockets and the 100 that never read, on one process
    "small": {"app": ROOT / "part5_live" / "small" / "change_stream.py", "socket": "/live", "collection": "messages",
              "field": "text"},
}
OPENING_AT_ONCE = 100  # handshakes in flight at a time, per client process (the listen backlog is 128)
RUNS = ["one", "two", "other", "no-pings", "deflate", "never-read"]  # see main()
NAME = re.compile(rb"live-(\d+)\.png")  # how an event names its upload


def raise_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- The clients: raw sockets, a minimal WebSocket client each (RFC 6455) ---

HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n")


def frame(opcode, payload=b""):
    """A client's frame: masked, as a client's must be, with a mask of zeros (the
    payload unchanged; the server cannot tell). Control frames only: short."""
    return struct.pack("BB4x", 0x80 | opcode, 0x80 | len(payload)) + payload


class Peer:
    """One socket's state: bytes not yet parsed, its decompressor if deflate was agreed."""

    __slots__ = ("sock", "fd", "buffer", "open", "inflater", "closed_with")

    def __init__(self, sock):
        self.sock, self.fd, self.buffer = sock, sock.fileno(), b""
        self.open, self.inflater, self.closed_with = False, None, None


def parse(peer, now, arrivals):
    """Take the whole frames out of peer.buffer: events noted in `arrivals` (upload
    number: [times]), pings answered; False once the peer is closed."""
    data = peer.buffer
    while len(data) >= 2:
        first, second = data[0], data[1] & 0x7F
        start = 2
        if second == 126:
            if len(data) < 4:
                break
            second, start = struct.unpack_from("!H", data, 2)[0], 4
        elif second == 127:
            if len(data) < 10:
                break
            second, start = struct.unpack_from("!Q", data, 2)[0], 10
        if len(data) < start + second:
            break
        payload, data = data[start : start + second], data[start + second :]
        opcode = first & 0x0F
        if opcode == 0x9:
            peer.sock.send(frame(0xA, payload))  # pong, or the server's ping timeout closes us
        elif opcode == 0x8:
            peer.closed_with = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            peer.buffer = data
            return False
        elif opcode in (0x1, 0x2):
            if first & 0x40 and peer.inflater:  # RSV1: compressed (permessage-deflate)
                payload = peer.inflater.decompress(payload + b"\x00\x00\xff\xff")
            for number in NAME.findall(payload):
                arrivals.setdefault(int(number), []).append(now)
    peer.buffer = data
    return True


def clients(host, port, path, count, never_read=False, deflate=False):
    """Open `count` sockets, print "ready", then note every event until stdin says
    stop (a line): then print their figures as JSON."""
    raise_open_files_limit()
    extensions = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    request = HANDSHAKE.format(path=path, host=f"{host}:{port}", key=base64.b64encode(os.urandom(16)).decode(),
                               extensions=extensions).encode()
    poller, peers, arrivals, errors, refused = select.epoll(), {}, {}, 0, []

    def read(peer, now):
        nonlocal errors
        try:
            data = peer.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            errors += 1
            poller.unregister(peer.sock)
            peer.sock.close()
            del peers[peer.fd]
            return
        peer.buffer += data
        if not peer.open:
            head, found, rest = peer.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                refused.append(head.split(b"\r\n")[0].decode())
            peer.open, peer.buffer = True, rest
            if b"permessage-deflate" in head.lower():
                peer.inflater = zlib.decompressobj(-15)
            if never_read:
                poller.modify(peer.sock, 0)  # from now on, never read
        if not parse(peer, now, arrivals):
            errors += 1

    opened = 0
    while opened < count:  # a batch at a time: the server accepts as fast as it can
        batch = []
        for _ in range(min(OPENING_AT_ONCE, count - opened)):
            sock = socket.socket()
            if never_read:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, port))
            sock.setblocking(False)
            sock.send(request)
            peer = Peer(sock)
            peers[peer.fd] = peer
            poller.register(sock, select.EPOLLIN)
            batch.append(peer)
        opened += len(batch)
        deadline = time.monotonic() + 30
        while not all(peer.open for peer in batch) and time.monotonic() < deadline:
            for fd, _ in poller.poll(1):
                if fd in peers:
                    read(peers[fd], time.time())
        errors += sum(not peer.open for peer in batch)
    print(f"ready {sum(peer.open for peer in peers.values())}", flush=True)
    poller.register(sys.stdin, select.EPOLLIN)
    while True:
        stop = False
        for fd, _ in poller.poll(1):
            if fd == sys.stdin.fileno():
                stop = True
            elif fd in peers:
                read(peers[fd], time.time())
        if stop:
            break
    closes, waiting = {}, 0
    if never_read:  # what the server did with them: read all that waits, to its close frame if any
        for peer in list(peers.values()):
            peer.sock.setblocking(True)
            peer.sock.settimeout(0.5)
            ended = False  # the server closed the connection (after its close frame, or without one)
            with contextlib.suppress(OSError):
                while data := peer.sock.recv(1 << 20):
                    peer.buffer += data
                    waiting += len(data)
                ended = True
            parse(peer, time.time(), {})
            code = str(peer.closed_with) if peer.closed_with is not None else "cut" if ended else "open"
            closes[code] = closes.get(code, 0) + 1
    else:
        for peer in peers.values():
            if peer.closed_with is not None:
                closes[str(peer.closed_with)] = closes.get(str(peer.closed_with), 0) + 1  # closed while we read
    print(json.dumps({"arrivals": arrivals, "errors": errors, "refused": refused[:3], "closes": closes,
                      "sockets": len(peers), "waiting": waiting}), flush=True)


class Clients:
    """A process of clients (clients() above), started and waited for until its
    sockets are open; figures() stops it and gives what it noted."""

    def __init__(self, port, path, count, never_read=False, deflate=False):
        self.count = count
        command = [sys.executable, __file__, "--clients", "127.0.0.1", str(port), path, str(count),
                   *(["--never-reading"] if never_read else []), *(["--deflate"] if deflate else [])]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wait_ready(self):
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"error: the clients did not connect: {line}{self.process.stdout.read()}")
        return int(line.split()[1])

    def figures(self):
        output, _ = self.process.communicate("stop\n", timeout=120)
        return json.loads(output)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- The servers ---


def serve(app, args, stats, fanout=None, deflate=False):
    """Run `app` as its __main__, its open files limit raised, its access log quiet;
    with `fanout`, the stage's fan-out made the other way; with `deflate`,
    permessage-deflate offered to every socket (Tornado's default: off). The stage's
    Feed.tell() is timed: how long each fan-out held the event loop, written to
    `stats` (JSON) at exit."""
    import atexit
    import logging
    import runpy

    import tornado.websocket

    raise_open_files_limit()
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    sys.path.insert(0, os.path.dirname(os.path.abspath(app)))
    if deflate:  # on Tornado's class, and on the stage's, which says None
        handlers = [tornado.websocket.WebSocketHandler]
        if os.path.exists(os.path.join(os.path.dirname(app), "live.py")):
            import live

            handlers.append(live.LiveHandler)
        for handler in handlers:
            handler.get_compression_options = lambda self: {}
    if fanout:
        other_fanout(fanout)
    durations = []
    if os.path.exists(os.path.join(os.path.dirname(app), "changes.py")):
        import changes

        tell = changes.Feed.tell

        profile = os.environ.get("LIVE_PROFILE")  # with --profile: where cProfile's figures of the fan-outs go
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            atexit.register(lambda: profiler.dump_stats(profile))

        def timed_tell(self, message):
            start = time.perf_counter()
            if profile:
                profiler.enable()
            tell(self, message)
            if profile:
                profiler.disable()
            durations.append((time.perf_counter() - start) * 1000)

        changes.Feed.tell = timed_tell

    def write_figures():
        with open(stats, "w") as file:
            json.dump({"fanout_ms": durations}, file)

    atexit.register(write_figures)
    sys.argv = [app, *args]
    runpy.run_path(app, run_name="__main__")


class Server(Measured, Program):
    """The stage (or the small version) served through serve() above, on a free port."""

    def __init__(self, kind, db_uri, db_name, fanout=None, deflate=False, args=()):
        port = free_port()
        self.stats = tempfile.NamedTemporaryFile(suffix=".json")
        command = [sys.executable, __file__, "--serve", KINDS[kind]["app"], "--stats", self.stats.name,
                   *([f"--fanout={fanout}"] if fanout else []), *(["--deflate"] if deflate else []),
                   "--", *KINDS[kind].get("args", ()), *args]
        super().__init__(command, port, {"PORT": str(port), "MONGODB_URI": db_uri, "MONGODB_DB": db_name}, timeout=60)

    def fanouts(self):
        """How long each fan-out held its event loop, in ms (once it has stopped)."""
        with open(self.stats.name) as file:
            text = file.read()
        self.stats.close()
        return json.loads(text)["fanout_ms"] if text else []


OTHER_FANOUT = ("each frame made once", "framed")  # the way the stage does not fan out, for comparison


def other_fanout(way):
    """The stage's fan-out made `way`, for the comparison only. "framed": its Feed
    hands every socket the same encoded message; here, LiveHandler.write_message()
    makes that message's frame once, the first time it is given it, and writes the
    same bytes to each socket's stream (Tornado's makes a frame, and a task that
    waits for the write, for each socket)."""
    import live  # the stage's module, by plain name as its app.py imports it
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    if way != "framed":
        raise SystemExit(f"error: no fan-out {way!r}")
    last = [None, b""]  # the message last framed, and its frame

    def write_message(self, message, binary=False):
        if self.ws_connection is None or self.ws_connection.is_closing():
            raise WebSocketClosedError()
        if message is not last[0]:
            size = len(message)
            header = struct.pack("!BB", 0x81, size) if size < 126 else (
                struct.pack("!BBH", 0x81, 126, size) if size < 1 << 16 else struct.pack("!BBQ", 0x81, 127, size))
            last[:] = message, header + message
        try:
            return self.ws_connection.stream.write(last[1])
        except StreamClosedError:
            raise WebSocketClosedError() from None

    live.LiveHandler.write_message = write_message


# --- The uploads, and when the database stored each ---


class Inserts:
    """This script's own change stream on the collection the uploads go to, in a
    thread: when each upload was inserted (its event's wallTime, the database's clock;
    or None)."""

    def __init__(self, db_uri, db_name, collection, field):
        from pymongo import MongoClient

        self.client = MongoClient(db_uri)
        self.stream = self.client[db_name][collection].watch([{"$match": {"operationType": "insert"}}])
        self.field, self.times, self.thread = field, {}, threading.Thread(target=self.follow, daemon=True)
        self.thread.start()

    def follow(self):
        import datetime

        with contextlib.suppress(Exception):  # closed at the end
            for change in self.stream:
                match = NAME.search(str(change["fullDocument"].get(self.field, "")).encode())
                wall = change.get("wallTime")
                if match and wall:
                    self.times[int(match[1])] = wall.replace(tzinfo=datetime.timezone.utc).timestamp()

    def close(self):
        self.stream.close()
        self.client.close()


class Uploader:
    """Makes upload number n through `server` as a visitor would: part 5, a PUT of
    a small PNG named live-<n>.png; the small version, a POST to /say."""

    def __init__(self, kind, server):
        self.kind, self.url = kind, server.url
        self.photo = image_bytes(size=(64, 48), color="teal")
        self.headers = visitor(self.url).xsrf_headers() if kind == "part5" else {}

    def upload(self, n):
        if self.kind == "part5":
            request = urllib.request.Request(f"{self.url}/upload/live-{n}.png", data=self.photo, method="PUT",
                                             headers={**self.headers, "Content-Type": "image/png"})
        else:
            request = urllib.request.Request(f"{self.url}/say", data=f"text=live-{n}.png".encode(), method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()


# --- A run: servers, sockets, uploads ---


def measure(kind, sockets, processes, uploads, interval, workers, fanout=None, deflate=False, args=()):
    """Serve `kind` in `processes` copies, open `sockets` spread over them, make
    `uploads` uploads `interval` s apart through the first: the run's figures."""
    spec = KINDS[kind]
    with database() as (db_uri, db_name), contextlib.ExitStack() as stack:
        servers = [stack.enter_context(Server(kind, db_uri, db_name, fanout, deflate, args)) for _ in range(processes)]
        uploader = Uploader(kind, servers[0])
        uploader.upload(0)  # warm up: the first upload loads what an upload needs
        time.sleep(0.5)
        before = [server.rss() for server in servers]
        groups = []
        for index, server in enumerate(servers):
            share = sockets // processes + (index < sockets % processes)
            for worker in range(workers):
                count = share // workers + (worker < share % workers)
                if count:
                    groups.append(Clients(server.port, spec["socket"], count, deflate=deflate))
        stack.callback(lambda: [group.kill() for group in groups])
        opened = sum(group.wait_ready() for group in groups)
        time.sleep(0.5)
        connected = [server.rss() for server in servers]
        for server in servers:
            server.reset_peak()
        inserts = Inserts(db_uri, db_name, spec["collection"], spec["field"])
        stack.callback(inserts.close)
        time.sleep(0.2)
        sent, start = {}, time.monotonic()
        for n in range(1, uploads + 1):
            time.sleep(max(0.0, start + (n - 1) * interval - time.monotonic()))
            sent[n] = time.time()
            uploader.upload(n)
        time.sleep(max(1.0, 2 * interval))  # the last events on their way
        peaks = [server.peak() for server in servers]
        after = [server.rss() for server in servers]
        results = [group.figures() for group in groups]
        for server in servers:
            if "Traceback" in server.output():
                raise SystemExit(f"error: the server logged a traceback:\n{server.output()}")
    fanouts = [ms for server in servers for ms in server.fanouts()[1:]]  # less the warm-up's
    arrivals, errors, closes = {}, 0, {}
    for result in results:
        errors += result["errors"] + len(result["refused"])
        for number, times in result["arrivals"].items():
            arrivals.setdefault(int(number), []).extend(times)
        for code, count in result["closes"].items():
            closes[code] = closes.get(code, 0) + count
    delays = {"first": [], "median": [], "last": []}
    for n in range(1, uploads + 1):
        times = sorted(arrivals.get(n, []))
        errors += opened - len(times)  # a socket that missed the event
        if not times:
            continue
        inserted = inserts.times.get(n, sent[n])
        delays["first"].append((times[0] - inserted) * 1000)
        delays["median"].append((median(times) - inserted) * 1000)
        delays["last"].append((times[-1] - inserted) * 1000)
    return {"opened": opened, "errors": errors + (sockets - opened), "closes": closes, "delays": delays,
            "memory": sum(connected) - sum(before), "peak": sum(peaks) - sum(connected),
            "after": sum(after) - sum(connected), "from_wall_time": sum(n in inserts.times for n in sent),
            "uploads": uploads, "fanouts": fanouts}


HEADER = (f"{'':40} {'sockets':>7} {'memory':>11} {'a socket':>10} {'first p50/p99 ms':>15}   "
          f"{'median p50/p99 ms':>15}   {'last p50/p99 ms':>15} {'errors':>6}   {'fan-out p50/p99 ms':>15}")


def pair(values):
    return f"{percentile(values, 50):7.1f} {percentile(values, 99):7.1f}" if values else f"{'-':>7} {'-':>7}"


def stalled(kind, readers, never_read, burst, args=(), fanout=None):
    """`never_read` sockets that never read, beside `readers` that do, while `burst`
    uploads are stored at once (documents inserted by this script, as another process
    would: the pages are told of them all): the server's memory (MB: growth at the
    peak, and after), what waited for each never-reader (KB), how the server closed
    them, and the events the readers missed."""
    spec = KINDS[kind]
    with database() as (db_uri, db_name), contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(kind, db_uri, db_name, fanout, args=args))
        Uploader(kind, server).upload(0)
        reading = Clients(server.port, spec["socket"], readers)
        never = Clients(server.port, spec["socket"], never_read, never_read=True)
        stack.callback(reading.kill)
        stack.callback(never.kill)
        opened = reading.wait_ready()
        never.wait_ready()
        time.sleep(0.5)
        before, kernel = server.rss(), tcp_buffers()
        server.reset_peak()
        from pymongo import MongoClient

        with MongoClient(db_uri) as client:
            collection = client[db_name][spec["collection"]]
            for start in range(0, burst, 100):  # numbered from 100,000: apart from the uploads'
                numbers = range(100_000 + start, 100_000 + min(burst, start + 100))
                collection.insert_many([burst_document(kind, n) for n in numbers])
        time.sleep(1)
        busy = server.cpu_seconds()
        for _ in range(240):  # until the server has told every socket: its CPU time stops growing
            time.sleep(0.5)
            busy, was = server.cpu_seconds(), busy
            if busy - was < 0.02:
                break
        peak, after, kernel = server.peak(), server.rss(), tcp_buffers() - kernel
        read, waited = reading.figures(), never.figures()
    received = sum(len(times) for number, times in read["arrivals"].items() if int(number) >= 100_000)
    closed = {code: n for code, n in waited["closes"].items()}
    return {"peak": peak - before, "after": after - before, "kernel": kernel,
            "waiting": waited["waiting"] / never_read / 1000, "closes": closed,
            "missed": opened * burst - received + read["errors"]}


def tcp_buffers():
    """The memory of all TCP sockets' buffers on this machine, in MB (Linux: the kernel
    holds what a socket's peer has not read yet, outside any process's resident size)."""
    text = open("/proc/net/sockstat").read()
    return int(re.search(r"^TCP: .* mem (\d+)", text, re.M)[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def burst_document(kind, n):
    """An upload as the stage stores it (its GridFS file aside: the pages are told of
    the document), or the small version's message, about as long as the stage's event."""
    import datetime

    from bson import ObjectId

    if kind == "small":
        return {"text": f"live-{n}.png " + "x" * 400}
    return {"_id": ObjectId(), "filename": f"live-{n}.png", "length": 1000, "contentType": "application/octet-stream",
            "thumbnail": None, "uploadDate": datetime.datetime.now(datetime.timezone.utc)}


def report(label, figures, sockets):
    """A row: memory, the delays from each insert to the first, median and last
    socket's event, errors, and how long the server's loop spent telling its sockets."""
    delays = figures["delays"]
    print(f"{label:40} {sockets:7d} {figures['memory']:+8.1f} MB {figures['memory'] * MB / sockets / 1000:7.1f} KB "
          f"{pair(delays['first'])}   {pair(delays['median'])}   {pair(delays['last'])} {figures['errors']:6d}   "
          f"{pair(figures['fanouts'])}", flush=True)


def profiled(args):
    """One process again, its fan-outs under cProfile (slower): where their time goes."""
    import pstats

    with tempfile.NamedTemporaryFile(suffix=".prof") as profile:
        os.environ["LIVE_PROFILE"] = profile.name
        try:
            measure("part5", args.sockets, 1, args.uploads, args.interval, args.workers)
        finally:
            del os.environ["LIVE_PROFILE"]
        stats = pstats.Stats(profile.name)
    total = sum(row[2] for row in stats.stats.values())  # every function's own time
    print(f"\nWhere the fan-outs' time went, by function (cProfile, its own time; {total:.2f} s in all):")
    for (path, line, function), row in sorted(stats.stats.items(), key=lambda item: -item[1][2])[:8]:
        where = source_path(path)
        print(f"{row[2] / total * 100:5.1f} %  {function} ({where}:{line})" if line else
              f"{row[2] / total * 100:5.1f} %  {function}")


def main():
    parser = command_line(__doc__, "300 sockets, 3 uploads 0.3 s apart, 10 that never read")
    parser.add_argument("--sockets", type=int, default=10_000, help="open WebSockets in all (default 10,000)")
    parser.add_argument("--uploads", type=int, default=60, help="uploads, one every --interval s (default 60)")
    parser.add_argument("--interval", type=float, default=1, help="seconds between two uploads")
    parser.add_argument("--workers", type=int, default=4, help="client processes per server process")
    parser.add_argument("--never-read", type=int, default=100, help="sockets that never read, in the last run")
    parser.add_argument("--small", action="store_true", help="measure part5_live/small/change_stream.py")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=RUNS, help="which runs (default: all)")
    parser.add_argument("--profile", action="store_true", help="then one process again, its fan-outs profiled")
    parser.add_argument("--serve", metavar="APP", help=argparse.SUPPRESS)
    parser.add_argument("app_args", nargs="*", help=argparse.SUPPRESS)  # after --serve APP ... --
    parser.add_argument("--fanout", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    parser.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clients", nargs=4, metavar=("HOST", "PORT", "PATH", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--never-reading", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.app_args, args.stats, args.fanout, args.deflate)
    if args.clients:
        host, port, path, count = args.clients
        return clients(host, int(port), path, int(count), args.never_reading, args.deflate)
    if args.quick:
        args.sockets, args.uploads, args.interval, args.workers, args.never_read = 300, 3, 0.3, 1, 10
    raise_open_files_limit()
    kind = "small" if args.small else "part5"
    print(f"{args.sockets} WebSockets, {args.uploads} uploads {args.interval:g} s apart; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(HEADER)
    runs = {"one": ("one process", 1, {}), "two": ("two processes", 2, {})}
    if kind == "part5":
        runs["other"] = (f"one process, {OTHER_FANOUT[0]}", 1, {"fanout": OTHER_FANOUT[1]})
        runs["no-pings"] = ("one process, --ping_interval=0", 1, {"args": ["--ping_interval=0"]})
    for name, (label, processes, options) in runs.items():
        if name in args.runs:
            figures = measure(kind, args.sockets, processes, args.uploads, args.interval, args.workers, **options)
            report(f"{kind}, {label}", figures, args.sockets)
    print(f"{'target, one process':40} {'':>7} {'':>11} {TARGETS['bytes a socket'] / 1000:7.1f} KB {'':>15}   "
          f"{'':>15}   {'':>7} {TARGETS['last p99 ms']:7.1f} {TARGETS['errors']:6d}")
    if args.profile and kind == "part5":
        profiled(args)
    few = max(args.sockets // 10, 10)
    if "deflate" in args.runs:  # what a socket costs with permessage-deflate (a tenth of the sockets: it is costly)
        figures = measure(kind, few, 1, args.uploads, args.interval, 1, deflate=True)
        report(f"{kind}, permessage-deflate", figures, few)
    if "never-read" in args.runs:  # the bound per socket, as it is and out of the way
        burst = 300 if args.quick else 2000
        readers = 10
        print(f"\n{args.never_read} sockets that never read, beside {readers} that do, {burst} uploads stored at once "
              f"(pings every hour: the bound alone closes sockets):")
        pings = ["--ping_interval=3600"]
        variants = {"part5": [("--live_backlog=262144 (the default)", pings, None),
                              ("--live_backlog=1000000000 (no bound)", [*pings, "--live_backlog=1000000000"], None),
                              ("the default, each frame made once", pings, OTHER_FANOUT[1])],
                    "small": [("the small version", [], None)]}[kind]
        for label, options, fanout in variants:
            figures = stalled(kind, readers, args.never_read, burst, options, fanout)
            closes = ", ".join(f"{code}: {n}" for code, n in sorted(figures["closes"].items()))
            print(f"{label:38} memory {figures['peak']:+7.1f} MB at the peak, {figures['after']:+7.1f} MB after, "
                  f"the kernel's TCP buffers {figures['kernel']:+7.1f} MB; "
                  f"{figures['waiting']:7.1f} KB waited for each; closed: {closes}; events the others missed: "
                  f"{figures['missed']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
