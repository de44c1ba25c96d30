"""Across processes: each one watches the database, and tells its own sockets."""

import asyncio
import os

from motor.motor_tornado import MotorClient
from tornado import web, websocket


class Live(websocket.WebSocketHandler):
    sockets = set()  # this process's open sockets

    def open(self):
        self.sockets.add(self)

    def on_close(self):
        self.sockets.discard(self)


class Say(web.RequestHandler):
    async def post(self):  # stored by any process: every process hears of it
        await self.settings["db"].messages.insert_one({"text": self.get_argument("text")})


async def tell_sockets(db):
    async with db.messages.watch() as stream:  # one change stream for the whole process
        async for change in stream:
            for socket in Live.sockets:
                socket.write_message({"text": change["fullDocument"]["text"]})


async def main():
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"))
    db = client[os.environ.get("MONGODB_DB", "live")]
    web.Application([(r"/live", Live), (r"/say", Say)], db=db).listen(int(os.environ.get("PORT", 8000)))
    await tell_sockets(db)


if __name__ == "__main__":
    asyncio.run(main())
