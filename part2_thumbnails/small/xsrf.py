"""A form that only our own pages can post: Tornado's XSRF token."""

import asyncio
import os

import tornado.web


class NoteHandler(tornado.web.RequestHandler):
    def get(self):
        # xsrf_form_html() is the hidden _xsrf field; the _xsrf cookie is set now if missing.
        self.write(f'<form method="post">{self.xsrf_form_html()}<input name="note"><button>Send</button></form>')

    def post(self):  # Tornado has checked the token before this runs
        self.set_header("Content-Type", "text/plain")
        self.write(f"Received: {self.get_argument('note')}\n")


async def main():
    # With xsrf_cookies, a POST whose token does not repeat its _xsrf cookie's is a 403.
    app = tornado.web.Application([(r"/", NoteHandler)], xsrf_cookies=True)
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
