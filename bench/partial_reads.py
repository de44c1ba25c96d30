"""The 2012 blog post's test, run again: 2000 clients each read one byte of a
100 MB file, then go.

    python bench/partial_reads.py            # 2000 clients, a 100 MB file
    python bench/partial_reads.py --quick    # 200 clients, 8 MB: checks the script works

Each client asks for the whole file, reads the first byte of the body and closes
the connection, CONCURRENCY of them at a time. A server that reads the file
faster than clients take it, or goes on reading after they leave, pays for it in
memory, time and database reads. Three servers: part 3 and Motor's GridFSHandler
(which never waits for a client) serving the file from GridFS, and Tornado's
StaticFileHandler serving it from disk, the handler the 2012 post measured. Part 3
runs a second time with READ_AHEAD_FROM = 0 (harness.py's --set): reading two
pieces ahead from the first byte, not once a client has taken 4 MiB.
GridFSHandler gets a hundredth of the clients: it reads the whole file for each,
gone or not, and with 2000 of them the embedded database, answering 20 reads of
the whole file at a time, grew to 21 GB and was killed by the kernel. Printed for
each: the clients served, the seconds they took, the server's memory growth at its
peak and once they are gone. A server that answers anything but 200, or grows by
more than MEMORY_LIMIT, is stopped short, and the line says so.
"""

import asyncio
import time
from urllib.parse import urlsplit

from harness import MB, Server, big_file, command_line, gridfs_servers, memory

CONCURRENCY = 20
GRIDFSHANDLER_SHARE = 100  # GridFSHandler gets 1/100 of the clients (see above)
# A server whose memory grows past this is stopped short: the machine is shared.
MEMORY_LIMIT = 3000  # MB


class ServerError(Exception):
    """A status line other than 200."""

async def read_one_byte(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ServerError(head.splitlines()[0].decode())
        return len(await reader.readexactly(1))
    finally:
        writer.close()  # with bytes unread: the server sees a reset


async def storm(url, clients, timeout, server=None):
    """`clients` one-byte readers of `url`, CONCURRENCY at a time: (seconds taken,
    how many done, a note if cut short: an answer other than 200, `server` grew by
    more than MEMORY_LIMIT, or time ran out)."""
    parts = urlsplit(url)
    slots, done = asyncio.Semaphore(CONCURRENCY), 0
    before = server.rss() if server else 0

    async def client():
        nonlocal done
        async with slots:
            received = await read_one_byte(parts.hostname, parts.port, parts.path)
        done += received

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
    everyone, note = asyncio.ensure_future(asyncio.wait(tasks, timeout=timeout)), ""
    while not everyone.done() and not note:
        await asyncio.wait([everyone], timeout=0.1)
        failed = [task.exception() for task in tasks if task.done() and task.exception()]
        if failed:
            note = f"stopped: it answered {failed[0]}"
            if not isinstance(failed[0], ServerError):
                raise failed[0]
        elif server and server.rss() - before > MEMORY_LIMIT:
            note = f"stopped: over +{MEMORY_LIMIT} MB"
    for task in tasks:
        task.cancel()
    await asyncio.gather(everyone, *tasks, return_exceptions=True)
    if done < clients and not note:
        note = f"stopped: over {timeout} s"
    return time.perf_counter() - start, done, note


def measure(server, url, clients, timeout):
    asyncio.run(storm(url, 5, timeout))  # warm-up
    with memory(server) as figures:
        seconds, done, note = asyncio.run(storm(url, clients, timeout, server))
    time.sleep(1)  # let the server finish what it still does for the clients gone
    return seconds, done, note, figures["growth"], server.rss() - figures["before"]


def main():
    parser = command_line(__doc__, "a small file, fewer clients")
    args = parser.parse_args()
    size, clients = (8 * 10**6, 200) if args.quick else (100 * 10**6, 2000)

    with big_file(size) as (path, db_uri, db_name), gridfs_servers(path, db_uri, db_name) as servers, \
            Server("static", db_uri, db_name, files_dir=path.parent) as static, \
            Server("part3", db_uri, db_name, args=["--set", "downloads.READ_AHEAD_FROM=0"]) as eager:
        part3, url = servers["part 3"]
        # GridFSHandler last: the one that can exhaust the database.
        servers = {"part 3": servers["part 3"],
                   "part 3, READ_AHEAD_FROM = 0": (eager, eager.url + url.removeprefix(part3.url)),
                   "Tornado's StaticFileHandler": (static, f"{static.url}/static/{path.name}"),
                   "Motor's GridFSHandler": servers["Motor's GridFSHandler"]}
        print(f"{clients} clients reading 1 byte of a {size / MB:.0f} MB file, {CONCURRENCY} at a time")
        print(f"{'':28} {'clients':>7} {'seconds':>8} {'per second':>11} {'memory peak':>12} {'after':>9}")
        for name, (server, url) in servers.items():
            count = clients // GRIDFSHANDLER_SHARE if name == "Motor's GridFSHandler" else clients
            seconds, done, note, peak, after = measure(server, url, count, timeout=1200)
            print(f"{name:28} {done:7} {seconds:8.1f} {done / seconds:11.0f} {peak:+9.1f} MB {after:+6.1f} MB"
                  + (f"  ({note})" if note else ""))
    print("(the 2012 post: StaticFileHandler then read the whole file for each client, and grew to 3.5 GB;"
          " target for part 3: memory +16 MB at most)")


if __name__ == "__main__":
    main()
