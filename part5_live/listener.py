"""Out of file descriptors: as many as the system allows each process, and a pause
in accepting connections, not a loop of tracebacks, when even those run out. Our own
accept loop also lets a request whose headers are too large get its answer, a 431."""

import asyncio
import contextlib
import resource

from tornado.iostream import IOStream, UnsatisfiableReadError

from base import log

ACCEPT_PAUSE = 0.5  # seconds without accepting when accept() fails, as nginx does
HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\nContent-Length: 46\r\n\r\nThe request's headers are over 64 KiB in all.\n")


def raise_descriptor_limit():
    """Raise this process's limit of open files, every connection being one, from
    its soft value (often 1024) to its hard one (often far higher); return it."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):  # macOS refuses an unlimited one: keep the soft
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Listener:
    """Accepts connections on the listening `sockets` for `server`, as HTTPServer's
    own add_sockets() does (in plain HTTP: TLS ends at the proxy, so a server with
    ssl_options is refused), but for one thing. Out of file descriptors, accept()
    fails: Tornado's loop then logs a traceback and tries again at once, for ever;
    this one stops accepting for ACCEPT_PAUSE seconds, says so in one line, and
    serves the connections it has meanwhile."""

    def __init__(self, server, sockets):
        if server.ssl_options is not None:  # wrapping sockets in TLS is TCPServer's, and not copied here
            raise ValueError("Listener serves plain HTTP: TLS ends at the proxy in front (deploy/nginx.conf)")
        self.server, self.sockets = server, sockets
        self.loop = asyncio.get_running_loop()
        self.resume = None
        self.listen()

    def listen(self):
        for sock in self.sockets:
            self.loop.add_reader(sock, self.accept, sock)

    def accept(self, sock):
        for _ in range(128):  # at most at a time: the loop has other work too
            try:
                connection, address = sock.accept()
            except BlockingIOError:  # no more waiting
                return
            except ConnectionAbortedError:  # gone before we took it
                continue
            except OSError as error:  # EMFILE: out of file descriptors (or the system is)
                self.pause(error)
                return
            # As Tornado's own accept loop makes them: within the server's buffer limits.
            stream = HTTPStream(connection, max_buffer_size=self.server.max_buffer_size,
                                read_chunk_size=self.server.read_chunk_size)
            self.server.handle_stream(stream, address)

    def pause(self, error):
        for sock in self.sockets:
            self.loop.remove_reader(sock)
        self.resume = self.loop.call_later(ACCEPT_PAUSE, self.listen)
        log.warning("cannot accept connections (%s, the limit is %d): pausing %s s", error.strerror,
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0], ACCEPT_PAUSE)

    def close(self):
        """Accept no more: from now on the port refuses connections."""
        if self.resume is not None:
            self.resume.cancel()
        for sock in self.sockets:
            self.loop.remove_reader(sock)
            sock.close()


class HTTPStream(IOStream):
    """A connection's stream that answers a header block over the server's limit
    (max_header_size, 64 KiB) with a 431 before it closes: Tornado's reader gives up
    with UnsatisfiableReadError and closes the connection without a word, and the
    client cannot tell why."""

    reading_headers = False

    def read_until_regex(self, regex, max_bytes=None):
        # Tornado's HTTP/1 connection reads a request's header block this way, and nothing else.
        self.reading_headers = True
        future = super().read_until_regex(regex, max_bytes)
        future.add_done_callback(self.headers_read)
        return future

    def headers_read(self, future):
        self.reading_headers = False

    def close(self, exc_info=False):
        if isinstance(exc_info, UnsatisfiableReadError) and self.reading_headers and not self.closed():
            with contextlib.suppress(OSError):  # a few bytes into an empty send buffer, or nothing
                self.socket.send(HEADERS_TOO_LARGE)
        super().close(exc_info)
