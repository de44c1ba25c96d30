"""Who is signed in: a name kept in a signed cookie, and a page for the signed in only."""

import asyncio
import os
import secrets

import tornado.web


class BaseHandler(tornado.web.RequestHandler):
    def get_current_user(self):  # what self.current_user gives, asked once a request
        name = self.get_signed_cookie("user")  # None if missing, not signed by us, or over 31 days old
        return name.decode() if name else None


class LoginHandler(BaseHandler):
    def get(self):
        self.write(f'<form method="post">{self.xsrf_form_html()}<input name="name"><button>Sign in</button></form>')

    def post(self):
        self.set_signed_cookie("user", self.get_argument("name"), httponly=True)  # no script needs to read it
        self.redirect("/mine")


class MineHandler(BaseHandler):
    @tornado.web.authenticated  # signed out: a GET is sent to login_url, any other method gets a 403
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write(f"Signed in as {self.current_user}\n")


async def main():
    app = tornado.web.Application([(r"/login", LoginHandler), (r"/mine", MineHandler)], login_url="/login",
                                  cookie_secret=os.environ.get("COOKIE_SECRET") or secrets.token_hex(32),
                                  xsrf_cookies=True)
    app.listen(int(os.environ.get("PORT", "8000")))
    await asyncio.Event().wait()


asyncio.run(main())
