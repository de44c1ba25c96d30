"""What uploads that stall cost part 4's memory, with and without --max_uploads.

    python bench/stalled_uploads.py            # 1000 uploads; --max_uploads=1000, then the default 100
    python bench/stalled_uploads.py --quick    # 100 uploads; --max_uploads=100, then 10

Each upload declares 10 MB, sends 250 KiB (less than one GridFS chunk, which is
255 KiB, so nothing reaches the database) and then stalls: the process holds
those bytes until the rest comes, or until --idle_timeout cuts it. The growth of
the process's resident memory is measured at its peak, and the uploads refused
(503, with Retry-After) are counted. The connections are opened 50 at a time.
"""

import resource
import socket
import time

from harness import MB, Stage, command_line, database, memory, visitor

SENT = 250 * 1024  # bytes of each upload: under a chunk
DECLARED = 10 * 10**6


def stall(port, xsrf_headers, count):
    """`count` uploads that send SENT bytes and stop; returns their sockets."""
    lines = ["PUT /upload/stalled.bin HTTP/1.1", "Host: x", f"Content-Length: {DECLARED}",
             *(f"{name}: {value}" for name, value in xsrf_headers.items())]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    body = bytes(SENT)
    uploads = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setblocking(False)
        try:
            sock.send(head + body)  # as much as the kernel takes; a refused one is closed soon
        except (BlockingIOError, ConnectionError):
            pass
        uploads.append(sock)
        if n % 50 == 49:
            time.sleep(0.1)  # let the server keep up: a storm of connects is another benchmark
    return uploads


def refused(uploads):
    """How many uploads got an answer: the 503s, since none could finish."""
    answered = 0
    for sock in uploads:
        sock.setblocking(True)
        sock.settimeout(0.01)
        try:
            answered += sock.recv(12).startswith(b"HTTP/1.1 503")
        except (TimeoutError, ConnectionError):
            pass
    return answered


def measure(count, max_uploads, db_uri, db_name):
    with Stage("part4_production", db_uri, db_name, [f"--max_uploads={max_uploads}", "--logging=warning"]) as app:
        xsrf_headers = visitor(app.url).xsrf_headers()
        time.sleep(0.5)
        with memory(app) as figures:
            uploads = stall(app.port, xsrf_headers, count)
            time.sleep(2)  # the last bytes read
        answered = refused(uploads)
        for sock in uploads:
            sock.close()
    return figures["growth"], answered


def main():
    parser = command_line(__doc__, "100 uploads, not 1000")
    args = parser.parse_args()
    count, bounds = (100, [100, 10]) if args.quick else (1000, [1000, 100])
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    print(f"{count} uploads that send {SENT // 1024} KiB and stall, against part 4")
    with database() as (db_uri, db_name):
        for max_uploads in bounds:
            growth, answered = measure(count, max_uploads, db_uri, db_name)
            print(f"--max_uploads={max_uploads:<5}: memory {growth:+7.1f} MB ({growth * MB / count / 1024:.0f} KiB "
                  f"an upload); {count - answered} held, {answered} refused with 503")


if __name__ == "__main__":
    main()
