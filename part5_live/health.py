"""The health check, for a load balancer or an orchestrator: GET /healthz."""

import tornado.web
from pymongo.errors import PyMongoError

from base import BaseHandler


class HealthHandler(BaseHandler):
    """GET /healthz, for a load balancer or an orchestrator: 200 "ok" while the
    database answers, else 503, and they send visitors elsewhere."""

    async def get(self):
        self.set_header("Content-Type", "text/plain")
        self.set_header("Cache-Control", "no-store")
        try:
            await self.db.command("ping")
        except PyMongoError:
            raise tornado.web.HTTPError(503, "The database does not answer.")
        self.write("ok")

    def head(self):  # as many load balancers ask
        return self.get()
