"""The 2012 blog post's test: many clients each read one byte of a big file, then go.

    python bench/partial_reads.py            # 2000 clients, a 200 MB file
    python bench/partial_reads.py --quick    # 100 clients, 8 MB: checks the script works

Each client asks for the whole file, reads the first byte of the body and closes
the connection, CONCURRENCY of them at a time. A server that reads the file
faster than clients take it, or goes on reading after they leave, pays for it in
memory and in database reads. Part 3 is measured beside Motor's GridFSHandler,
which never waits for a client: that one gets a hundredth of the clients, as it
reads the whole file for each, gone or not.
"""

import argparse
import asyncio
import time
from urllib.parse import urlsplit

from harness import MB, big_file, gridfs_servers, memory

CONCURRENCY = 20


async def read_one_byte(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"error: {path} gave {head.splitlines()[0]!r}")
        return len(await reader.readexactly(1))
    finally:
        writer.close()  # with bytes unread: the server sees a reset


async def storm(url, clients, timeout):
    """`clients` one-byte readers of `url`, CONCURRENCY at a time: (requests per second, how many done)."""
    parts = urlsplit(url)
    slots, done = asyncio.Semaphore(CONCURRENCY), 0

    async def client():
        nonlocal done
        async with slots:
            received = await read_one_byte(parts.hostname, parts.port, parts.path)
        done += received

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
    finished, unfinished = await asyncio.wait(tasks, timeout=timeout)
    for task in unfinished:
        task.cancel()
    for task in finished:
        task.result()  # raise the first failure, if any
    return done / (time.perf_counter() - start), done


def measure(server, url, clients, timeout):
    asyncio.run(storm(url, 5, timeout))  # warm-up
    with memory(server) as figures:
        rate, done = asyncio.run(storm(url, clients, timeout))
    time.sleep(1)  # let the server finish what it still does for the clients gone
    return rate, done, figures["growth"], server.rss() - figures["before"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small file, few clients")
    args = parser.parse_args()
    size, clients = (8 * 10**6, 200) if args.quick else (200 * 10**6, 2000)

    with big_file(size) as (path, db_uri, db_name), gridfs_servers(path, db_uri, db_name) as servers:
        print(f"Clients reading 1 byte of a {size / MB:.0f} MB file from GridFS, {CONCURRENCY} at a time")
        print(f"{'':24} {'clients':>8} {'per second':>11} {'memory peak':>12} {'after':>9}")
        # GridFSHandler reads the whole file for each client, gone or not: it gets a hundredth of them.
        for (name, (server, url)), count in zip(servers.items(), (clients, clients // 100)):
            rate, done, peak, after = measure(server, url, count, timeout=300)
            print(f"{name:24} {done:8} {rate:11.0f} {peak:+9.1f} MB {after:+6.1f} MB")
    print("(target for part 3: memory +16 MB at most)")


if __name__ == "__main__":
    main()
