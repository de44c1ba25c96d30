"""A health check: GET /healthz answers 200 while this process and its database
answer, else 503, for a load balancer to send visitors elsewhere."""

import asyncio
import os

import tornado.web
from motor.motor_tornado import MotorClient
from pymongo.errors import PyMongoError


class HealthHandler(tornado.web.RequestHandler):
    async def get(self):
        self.set_header("Content-Type", "text/plain")
        self.set_header("Cache-Control", "no-store")  # every answer is news
        try:
            await self.settings["db"].command("ping")
        except PyMongoError:
            raise tornado.web.HTTPError(503)
        self.write("ok")

    def head(self):  # many load balancers ask with HEAD
        return self.get()


async def main():
    # Give up on the database after 2 s: a health check must answer quickly.
    client = MotorClient(os.environ.get("MONGODB_URI", "mongodb://localhost:27017"), timeoutMS=2000)
    db = client[os.environ.get("MONGODB_DB", "healthz")]
    app = tornado.web.Application([(r"/healthz", HealthHandler)], db=db)
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
