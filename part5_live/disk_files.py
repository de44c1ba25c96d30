"""The files of --files_dir, served at /files/ as the 2012 post served a big file
from disk: sent by ChunkedDownload, as GridFS's are, from the file the request opened."""

import datetime
import fcntl
import mimetypes
import os
import stat
import sys
from pathlib import Path

import tornado.web

from downloads import ChunkedDownload

# How much a download reads of a file on disk at a time, at most: 1 MiB (of GridFS,
# gridfs_chunks.CHUNKS_PER_READ). bench/big_downloads.py measures 64 KiB.
DISK_READ_SIZE = 1024 * 1024


# Not Tornado's StaticFileHandler, which hashes a file for its ETag before its first byte (64 MiB of a bigger one,
# then none), keeps that ETag when the file changes, ignores If-Range, reads 64 KiB (bench/big_downloads.py).
class FileHandler(ChunkedDownload):
    """GET /files/<path>: a file of --files_dir, sent the same way."""

    # A file rewritten within the second of its Last-Modified keeps that date: a range of
    # the new version would be spliced onto the client's part of the old. Its ETag tells.
    dates_name_one_version = False

    async def get(self, path, include_body=True):
        file, where = open_inside(Path(self.settings["files_dir"]).resolve(), path)
        if file is None:
            raise tornado.web.HTTPError(404, "There is no such file here.")
        with file:
            file_stat = os.fstat(file.fileno())
            kind = mimetypes.guess_type(where)[0]  # a link's target's type
            self.set_header("Content-Type", kind or "application/octet-stream")
            modified = datetime.datetime.fromtimestamp(file_stat.st_mtime, datetime.UTC)
            await self.send_file(file_stat.st_size, f'"{file_stat.st_mtime_ns:x}-{file_stat.st_size:x}"', modified,
                                 lambda start, end: FileRange(file, start, end), include_body)

    def head(self, path):
        return self.get(path, include_body=False)


def open_inside(root, path):
    """The regular file at `path` under the folder `root`, open for reading, and where it
    really is; (None, None) if there is none. Links are followed, `..` too, and then
    what was opened is checked, not the path: a path checked first, then opened, may
    lead elsewhere by then (a folder swapped for a link to /etc in between served
    /etc/passwd)."""
    try:
        fd = os.open(root / path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block open() for ever
    # No such file, a NUL byte, a name too long, a loop of links, no permission.
    except (OSError, ValueError):
        return None, None
    where = Path(real_path(fd))
    if stat.S_ISREG(os.fstat(fd).st_mode) and where.is_relative_to(root):
        return os.fdopen(fd, "rb", buffering=0), where
    os.close(fd)
    return None, None


def real_path(fd):
    """Where the file open as `fd` is, whatever path opened it: as the system knows it."""
    if sys.platform == "darwin":
        return fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).rstrip(b"\0").decode()
    return os.readlink(f"/proc/self/fd/{fd}")  # Linux


class FileRange:
    """Reads bytes start..end of an open file, DISK_READ_SIZE at a time. On the event
    loop, as StaticFileHandler does: from the page cache, reads on a thread were slower
    and took more CPU (bench/big_downloads.py)."""

    def __init__(self, file, start, end):
        self.file, self.left = file, end - start
        file.seek(start)

    async def read(self):
        piece = self.file.read(min(self.left, DISK_READ_SIZE))
        if self.left and not piece:  # cut short since its size was sent: the client must know
            raise OSError(f"{self.file.name} shrank during the download: {self.left} bytes are missing")
        self.left -= len(piece)
        return [piece] if piece else []
