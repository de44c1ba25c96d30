"""Decoding within a memory budget: a thread waits until what its image takes is free."""

import asyncio
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import tornado.web
from PIL import Image

BUDGET = 64 * 1024**2  # bytes the threads may decode into at once
lent, changed = 0, threading.Condition()  # bytes lent now; a lock, to wait on until that changes
pool = ThreadPoolExecutor(4)


def decode(data):
    global lent
    image = Image.open(io.BytesIO(data))  # reads the header only
    cost = image.width * image.height * 4  # RGBA: 4 bytes a pixel
    with changed:
        changed.wait_for(lambda: lent == 0 or lent + cost <= BUDGET)  # one too big goes alone
        lent += cost
    image.load()  # decodes every pixel: this takes `cost`
    with changed:
        lent -= cost
        changed.notify_all()
    return f"{image.width}x{image.height}: {cost} bytes to decode\n"


class DecodeHandler(tornado.web.RequestHandler):
    async def put(self):
        self.write(await asyncio.get_running_loop().run_in_executor(pool, decode, self.request.body))


async def main():
    tornado.web.Application([(r"/decode", DecodeHandler)]).listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()

asyncio.run(main())
