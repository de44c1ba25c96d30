# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Templates and authentication
#
# **Stage: parts 1 and 2, `part1_basic` and `part2_thumbnails`** (templates are taught in
# [part 1's lesson](../part1_basic/README.md#the-page-a-tornado-template), the
# `cookie_secret` in [part 2's](../part2_thumbnails/README.md#chapter-5-refusing-forged-requests-basepy-apppy),
# signed cookies and `@authenticated` in its
# [chapter 7](../part2_thumbnails/README.md#chapter-7-who-is-signed-in-for-exercise-4-signed-cookies)).
# The stages render their pages with Tornado's templates and hold a secret to sign
# cookies with, but no stage has users yet: part 2's exercise 4 adds them. This
# notebook serves small applications from the kernel, one for each idea, and requests
# them over HTTP, as a browser would.
#
# ## What you will learn
#
# 1. the template language: `{{ }}` and `{% %}` with `if`, `for`, `while`, `try` and
#    `set`, each closed by `{% end %}`;
# 2. autoescaping: what `{{ }}` escapes, what `{% raw %}` and `{% autoescape None %}`
#    change, and where escaping is not enough (an attribute without quotes, a
#    `javascript:` link, JSON inside a `<script>`);
# 3. pages built from parts: `{% extends %}` and `{% block %}`, `{% include %}`, a UI
#    module that brings its own CSS and JavaScript, and `static_url` with its `?v=` hash;
# 4. signed cookies: what the signature protects (the value, its age, the cookie's
#    name) and what it does not (anyone can read it; a copy works as well as the
#    original, even after logging out); changing the secret with `key_version`;
# 5. who is asking: `get_current_user()`, called lazily, once per request; `prepare()`
#    to load a user with `await`; `@tornado.web.authenticated`; a login and a logout;
# 6. passwords: why they need a slow hash, and `hashlib.scrypt` run on the executor,
#    with the event loop's lag plotted against the same hash run on the loop;
#
# then three exercises: a link that stays a link whatever its text, a page for admins
# only, and a login that takes as long for a name nobody has as for one that exists.
#
# It needs no database. Run the cells in order; any cell can be run again, and so can
# the whole notebook (the setup cell stops what the last run started). The parameters
# cell holds the numbers worth varying; cells marked **Try it** are there to be
# changed; each exercise has a check, and a solution folded away below it. The last
# cell stops everything and deletes the folder of templates the notebook writes.
#
# Timings depend on your machine and on what else it is doing: the figures quoted
# below come from a shared machine with 2 cores, so they are given as ranges.

# %% tags=["parameters"]
SCRYPT_N = 16384  # scrypt's cost (2**14): its work, and its memory, 128 * N * r bytes (16 MiB)
SCRYPT_R = 8  # scrypt's block size
LOGINS = 4  # passwords hashed at once while the lag probe watches the loop
PROBE_INTERVAL = 0.005  # seconds the lag probe asks to sleep, again and again
TIMING_TRIES = 7  # failed logins timed for a name that exists, and as many for one that does not

# %%
import asyncio
import base64
import hashlib
import hmac
import html.parser
import os
import secrets
import statistics
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import matplotlib.pyplot as plt
import tornado
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop
from tornado.web import Application, HTTPError, RequestHandler, StaticFileHandler, UIModule, authenticated

from coursekit import lab  # the course's toolkit: the Session that starts and stops things, the colours
from coursekit.clients import cookie_values

print(f"Tornado {tornado.version}")

# %% [markdown]
# ## Start: a session, a folder, a client
#
# Everything the notebook starts belongs to one `lab.Session`; the folder holds the
# templates and static files the cells below write. Running this cell again stops
# the servers of the last run and deletes its folder first.

# %%
session = await lab.Session.start()
folder = await session.temporary_folder()
(folder / "templates").mkdir()
(folder / "static").mkdir()
client = AsyncHTTPClient()


def write(path, text):
    """Write a file of ours: a template in templates/, or a file in static/."""
    (folder / path).write_text(text.strip() + "\n")


async def fetch(url, **kwargs):
    """The response to one request, whatever its status; redirects are not followed."""
    return await client.fetch(url, raise_error=False, follow_redirects=False, **kwargs)


class Parsed(html.parser.HTMLParser):
    """What a browser's parser finds in a page: `tags`, each (name, attributes); the
    `texts` outside scripts; and `found`, all of it in order, as lines to print."""

    def __init__(self, page):
        super().__init__()
        self.tags, self.texts, self.found, self.in_script = [], [], [], False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.found.append(f"<{tag}> {dict(attrs)}" if attrs else f"<{tag}>")
        self.in_script = tag == "script"

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if data.strip():
            if not self.in_script:
                self.texts.append(data.strip())
            self.found.append(f"  {'script' if self.in_script else 'text'}: {data.strip()!r}")


print("Templates and static files go to", folder)

# %% [markdown]
# ## The template language
#
# One application serves the templates below: `GET /NAME` renders
# `templates/NAME.html`. Its variables are a list of three uploads (one of them with a
# name no one should trust) and two values taken from the query string, `visitor` and
# `website`, as a page would take them from a form. The application reads each
# template anew at every request (`compiled_template_cache=False`, as `debug=True`
# would set), so a cell can rewrite a template and fetch it again at once.

# %%
UPLOADS = [
    {"filename": "cat.png", "length": 48_213, "type": "image/png"},
    {"filename": "<script>alert('gotcha')</script>.png", "length": 1_024, "type": "image/png"},
    {"filename": "notes.txt", "length": 310, "type": "text/plain"},
]


class PageHandler(RequestHandler):
    """GET /NAME renders templates/NAME.html with the uploads, and `visitor` and `website` from the query."""

    def get(self, name):
        self.render(f"{name}.html", uploads=UPLOADS,
                    visitor=self.get_query_argument("visitor", "guest"),
                    website=self.get_query_argument("website", "https://www.tornadoweb.org/"))


def make_template_app(**settings):
    return Application([(r"/([\w-]+)", PageHandler)], template_path=folder / "templates",
                       static_path=folder / "static", compiled_template_cache=False, **settings)


async def show(name, base_url=None, **query):
    """Fetch /NAME (of the template app, unless `base_url` says) with `query`; print the
    page without its empty lines, and return it."""
    response = await fetch(f"{base_url or template_url}/{name}?{urllib.parse.urlencode(query)}")
    page = response.body.decode()
    print(f"GET /{name}: {response.code}", *[line for line in page.splitlines() if line.strip()], "", sep="\n")
    return page


template_url = await session.serve("the template app", make_template_app())
print("The template app:", template_url)

# %% [markdown]
# A first template, with a statement of each kind. Change it and run the cell again:
# the page follows.

# %%
write("templates/syntax.html", """
{# A comment: it is not sent. #}
<p>Hello, {{ visitor.title() }}: {{ len(uploads) }} files.</p>
{% set total = sum(upload["length"] for upload in uploads) %}
<ol>
  {% for upload in uploads %}
    {% if upload["type"].startswith("image/") %}
      <li>an image: {{ upload["filename"] }}, {{ upload["length"] }} bytes</li>
    {% else %}
      <li>a file of type {{ upload["type"] }}: {{ upload["filename"] }}</li>
    {% end %}
  {% end %}
</ol>
<p>{{ total }} bytes in all. The first two: {% set n = 0 %}{% while n < 2 %}{{ uploads[n]["filename"] }}; {% set n += 1 %}{% end %}</p>
<p>The tenth: {% try %}{{ uploads[9]["filename"] }}{% except IndexError %}there is none{% end %}.</p>
<p>Written as is: {{! visitor }} and {%! raw %}</p>
""")
await show("syntax", visitor="ada");

# %% [markdown]
# What you see:
#
# - `{{ expression }}` writes any Python expression (`visitor.title()`, `len(uploads)`);
#   `{% %}` holds statements. `if`, `for`, `while` and `try` are Python's own, and
#   each closes with `{% end %}` (not `endif` or `endfor`, as in Jinja).
#   `{% set %}` runs an assignment, even `n += 1`.
# - `{# ... #}` is a comment: it is not in the page. `{{!` and `{%!` write `{{` and
#   `{%` as they are.
# - The second upload's name, `<script>...`, arrived as text: `&lt;script&gt;`.
#   That is autoescaping, the subject of the next section.
# - The indentation is gone: in a template whose name ends in `.html` or `.js`,
#   Tornado turns each run of spaces into one, and each run of spaces and line breaks
#   into one line break (the `template_whitespace` setting changes that). The lines
#   that held only a statement are left as empty lines, which `show()` does not print.
#
# ## Autoescaping, and where it is not enough
#
# Everything `{{ }}` writes goes through `xhtml_escape` first, which replaces the five
# characters `<`, `>`, `&`, `"` and `'` with entities. `{% raw expression %}` writes a
# value as it is. Each page below is fetched with a hostile `visitor`, and under it,
# `Parsed` shows what a browser's parser makes of it: an `<img>` with an `onerror`
# attribute would run its script as soon as the image fails to load.

# %%
write("templates/text.html", """
<p>{{ visitor }}</p>
<p>{% raw visitor %}</p>
""")
page = await show("text", visitor="<img src=x onerror=alert(1)>")
print(*Parsed(page).found, sep="\n")

# %% [markdown]
# Escaped, the `<img>` is text in the first paragraph; raw, it is an element, and its
# `onerror` runs a script (here `alert(1)`; in an attack, one that sends the visitor's
# cookies elsewhere). Keep `{% raw %}` for HTML you made yourself.
#
# Inside an attribute, escaping turns `"` into `&quot;`, so a value cannot close the
# quotes around it. But the quotes must be there: without them, a space ends the value,
# and whatever follows is a new attribute.

# %%
write("templates/attribute.html", """
<a title="{{ visitor }}">quoted</a>
<a title={{ visitor }}>not quoted</a>
""")
for visitor in ['" onmouseover="alert(1)', "x onmouseover=alert(1)"]:
    page = await show("attribute", visitor=visitor)
    print(*Parsed(page).found, sep="\n", end="\n\n")

# %% [markdown]
# Quoted, the title holds the whole text, whoever the visitor. Unquoted, the first
# visitor already got an `onmouseover` attribute in (its value, `"alert(1)`, happens
# to be broken JavaScript), and the second needs no quotes at all: `onmouseover=alert(1)`
# is an attribute of its own, a script run when the mouse passes over the link.
#
# URLs have two more traps. A value put *into* a URL must be URL-encoded, with
# `url_escape` (also in every template's namespace): HTML escaping keeps `&` from
# breaking the page, but the browser decodes `&amp;` back to `&`, which in a URL ends
# the parameter. And a whole URL taken from a visitor, escaped or not, can be
# `javascript:...`, a script run by a click: check its scheme when you accept it.

# %%
write("templates/url.html", """
<a href="/search?q={{ url_escape(visitor) }}">with url_escape</a>
<a href="/search?q={{ visitor }}">without</a>
<a href="{{ website }}">the visitor's website</a>
""")
page = await show("url", visitor="cats & dogs", website="javascript:alert(1)")
for tag, attributes in Parsed(page).tags:
    href = attributes["href"]
    print(f"{href!r:28} -> query {urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)}, "
          f"scheme {urllib.parse.urlsplit(href).scheme or '(none: this site)'}")

# %% [markdown]
# Data for a script goes in as JSON, with `json_encode`. Inside `<script>`, though, a
# browser does not decode entities, so autoescaping would garble it: write it with
# `{% raw %}`. That is safe because `json_encode` writes `</` as `<\/`: a `</script>` in
# the data cannot end the script early. Python's `json.dumps` does not do that.

# %%
write("templates/script.html", """
{% import json %}
<script>const a = {% raw json_encode(visitor) %};</script>
<script>const b = {{ json_encode(visitor) }};</script>
<script>const c = {% raw json.dumps(visitor) %};</script>
""")
page = await show("script", visitor="</script><script>alert(1)//")
print(*Parsed(page).found, sep="\n")

# %% [markdown]
# - `a`: one script, holding a string, as meant.
# - `b`: the JavaScript reads `&quot;`, a syntax error: the data never arrives.
# - `c`: the data's `</script>` ended the third script, and a fourth one, the
#   visitor's `alert(1)`, runs. (`{% import json %}` works because a template is
#   Python: it can import anything, so templates are code, never something a visitor
#   writes.)
#
# Finally, `{% autoescape None %}` turns escaping off for the file that holds it (the
# whole file, even above the directive), and `escape()` is then yours to call; the
# `autoescape=None` application setting does it for every template. A file included
# with `{% include %}` keeps its own mode.

# %%
write("templates/no-escape.html", """
{% autoescape None %}
<p>{{ visitor }}</p>
<p>{{ escape(visitor) }}</p>
{% include "text.html" %}
""")
page = await show("no-escape", visitor="<b>bold</b>")
print(*Parsed(page).found, sep="\n")

# %% [markdown]
# The first line is raw: a `<b>` element. The second is escaped by hand. The last two,
# from `text.html`, are escaped and raw as that file says, whatever the file that
# includes it says.
#
# **Try it:** choose a visitor, and see what each page makes of it. Can you get a
# script past `attribute.html`'s quoted title, or `script.html`'s first line?

# %%
try_visitor = "'><svg onload=alert(1)>"
for name in ("text", "attribute", "script"):
    print(f"/{name}:", *Parsed((await fetch(f"{template_url}/{name}?visitor={urllib.parse.quote(try_visitor)}")
                                ).body.decode()).found, sep="\n  ")

# %% [markdown]
# ## Pages from parts: `{% extends %}`, `{% block %}`, `{% include %}`
#
# A site's pages share a frame. `base.html` holds it, with named holes, `{% block name %}`
# and their default content; a page says `{% extends "base.html" %}` and fills the
# holes it wants to. `{% include %}` pastes another file in place, and that file sees
# the variables of the one that includes it.

# %%
write("static/style.css", "body { font-family: sans-serif; }")
write("templates/base.html", """
<!doctype html>
<html>
<head>
  <title>{% block title %}Image host{% end %}</title>
  <link rel="stylesheet" href="{{ static_url('style.css') }}">
</head>
<body>
  {% include "header.html" %}
  {% block body %}<p>Nothing here yet.</p>{% end %}
</body>
</html>
""")
write("templates/header.html", "<header>Hello, {{ visitor }}</header>")
write("templates/list.html", """
{% extends "base.html" %}
This line is outside every block, so it is not on the page.
{% block title %}{{ len(uploads) }} files{% end %}
{% block body %}
  <ul>{% for upload in uploads %}<li>{{ upload["filename"] }}</li>{% end %}</ul>
{% end %}
""")
await show("list", visitor="ada");

# %% [markdown]
# The page is `base.html`, with the title and the body from `list.html`: a block
# replaces its default entirely (Tornado has no `super()` to add to it). The line
# outside the blocks is gone, the header included from `header.html` sees `visitor`,
# and `static_url('style.css')` wrote the stylesheet's URL with a `?v=` that the last
# section of this part explains.
#
# ## A UI module: a piece of page with its own CSS and JavaScript
#
# A `tornado.web.UIModule` is a class that renders one piece of a page, as often as the
# page likes, with `{% module Name(arguments) %}`. It may bring CSS and JavaScript,
# which `render()` adds to the page once, however many times the module is used: its
# `embedded_css()` goes in a `<style>` before `</head>`, its `embedded_javascript()` in
# a `<script>` before `</body>` (and `css_files()` and `javascript_files()` link files).
# Modules are named in the `ui_modules` setting, which an application reads when it is
# made: so we make another one, with the module, on another port.

# %%
class Upload(UIModule):
    """One upload, as a card: its HTML, the CSS that styles it, the JavaScript that acts on it."""

    def render(self, upload):
        return self.render_string("upload-card.html", upload=upload)

    def embedded_css(self):
        return ".card { border: 1px solid #777; padding: 4px; }"

    def embedded_javascript(self):
        return "document.querySelectorAll('.card').forEach(card => card.title = card.dataset.name);"


write("templates/upload-card.html", """
<div class="card" data-name="{{ upload['filename'] }}">{{ upload["filename"] }}, {{ upload["length"] }} bytes</div>
""")
write("templates/gallery.html", """
{% extends "base.html" %}
{% block body %}
  {% for upload in uploads %}{% module Upload(upload) %}{% end %}
{% end %}
""")
gallery_url = await session.serve("the template app, with a UI module", make_template_app(ui_modules={"Upload": Upload}))
gallery = await show("gallery", gallery_url, visitor="ada")

# %% [markdown]
# Three cards, one `<style>` and one `<script>`. What `{% module %}` writes is not
# escaped (it is HTML), so a module escapes for itself: this one renders its own
# template, where `{{ }}` escaped the hostile file name, in the text and in the
# quoted `data-name` attribute.
#
# ## `static_url` and its `?v=`: cache busting
#
# `static_url('style.css')` gave `/static/style.css?v=` and a long hex string: the
# SHA-512 hash of the file's contents. When a request for a static file carries a
# `v`, `StaticFileHandler` allows browsers to keep it for ten years; without one, it
# sets no lifetime (the browser decides how long to keep it, and checks it again
# with `If-Modified-Since` or `If-None-Match`).

# %%
def stylesheet_url(page):
    return page.split('<link rel="stylesheet" href="')[1].split('"')[0]


versioned = stylesheet_url(gallery)
print("static_url('style.css'):", versioned[:50] + "...")
print("the SHA-512 of style.css: ", hashlib.sha512((folder / "static/style.css").read_bytes()).hexdigest()[:24] + "...",
      "| the same:", versioned.endswith(hashlib.sha512((folder / "static/style.css").read_bytes()).hexdigest()))
for url in (versioned, "/static/style.css"):
    response = await fetch(gallery_url + url)
    print(f"GET {url[:30]:30}: {response.code}, Cache-Control: {response.headers.get('Cache-Control')}, "
          f"Expires: {response.headers.get('Expires')}")

# %% [markdown]
# When `style.css` changes, its hash changes, so its URL does, and a browser that
# kept the old file for ten years fetches the new one at once. The hash is computed
# once per file and process, though, and kept: below, the file changes, and the
# pages go on naming the old hash (while the file served at that URL is the new
# one) until `StaticFileHandler.reset()` forgets the hashes. A restart does the same,
# which is why a deployment's new files get new URLs; with `debug=True` (or
# `static_hash_cache=False`), Tornado resets at every request.

# %%
write("static/style.css", "body { font-family: serif; }")
after_edit = stylesheet_url((await fetch(f"{gallery_url}/gallery")).body.decode())
served = (await fetch(gallery_url + after_edit)).body.decode().strip()
print("after the edit:  the same URL:", after_edit == versioned, "| served at it:", served)
StaticFileHandler.reset()
after_reset = stylesheet_url((await fetch(f"{gallery_url}/gallery")).body.decode())
print("after reset():   the same URL:", after_reset == versioned, "| new ?v=", after_reset.split("?v=")[1][:24] + "...")

# %% [markdown]
# ## Signed cookies
#
# A cookie is text the server asks the browser to send back with each request; the
# browser, or anyone holding it, can change it. `set_signed_cookie(name, value)` adds
# a timestamp and an HMAC-SHA256 signature made with the application's
# `cookie_secret`; `get_signed_cookie(name)` returns the value only if the signature
# matches, else `None`. (These are Tornado 6.3's names; the old ones,
# `set_secure_cookie` and `get_secure_cookie`, remain as aliases.)
#
# A small application: `POST /remember` with a `name` signs it into a cookie, and
# `GET /whoami` says what the cookie it receives holds.

# %%
class RememberHandler(RequestHandler):
    def post(self):
        self.set_signed_cookie("name", self.get_body_argument("name"), httponly=True, samesite="Lax")


class WhoAmIHandler(RequestHandler):
    def get(self):
        name = self.get_signed_cookie("name")  # bytes, or None: unsigned, tampered with, or too old
        self.write({"name": name and name.decode(), "key version": self.get_signed_cookie_key_version("name")})


def make_cookie_app(cookie_secret, **settings):
    return Application([(r"/remember", RememberHandler), (r"/whoami", WhoAmIHandler)],
                       cookie_secret=cookie_secret, **settings)


def set_cookies(response):
    """{name: value} of the cookies a response sets."""
    return cookie_values(response.headers.get_list("Set-Cookie"))


async def whoami(base_url, cookie_header):
    return (await fetch(f"{base_url}/whoami", headers={"Cookie": cookie_header})).body.decode()


print("the old names are aliases:", RequestHandler.set_secure_cookie is RequestHandler.set_signed_cookie,
      RequestHandler.get_secure_cookie is RequestHandler.get_signed_cookie)
old_secret = secrets.token_hex(32)  # as part 2 makes its cookie_secret when none is given
cookie_url = await session.serve("the cookie app", make_cookie_app(old_secret))
response = await fetch(f"{cookie_url}/remember", method="POST", body="name=Ada")
print("Set-Cookie:", response.headers["Set-Cookie"])
signed = set_cookies(response)["name"]
print("GET /whoami:", await whoami(cookie_url, f"name={signed}"))

# %% [markdown]
# The value is in plain sight. The fields are separated by `|`, and all but the first
# and the last start with their length and a colon:

# %%
version, *fields, signature = signed.split("|")
key_version, timestamp, name, value = (field.split(":", 1)[1] for field in fields)
print(f"format {version}; key version {key_version}; "
      f"signed at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(int(timestamp)))}; cookie {name!r}; "
      f"value {value} -> base64-decoded: {base64.b64decode(value)!r}; signature {signature[:16]}... "
      f"({len(signature)} hex digits, an HMAC-SHA256 of all that comes before it)")

# %% [markdown]
# `Ada` is only base64-encoded: the signature stops forgery, not reading. Never put in
# a signed cookie what its holder may not see (a password, another user's data); for
# that, keep the data on the server and put an id in the cookie. The cell below sends
# the server five `name` cookies: the one it signed; the same with `Ada` changed to
# `Eve`; a value it signed for another cookie, `message` (say, a cookie that repeats
# what a visitor typed); one it signed 40 days ago (a cookie kept by a browser that
# long); and the genuine cookie again, from another client, as a thief who copied it
# would send it.

# %%
def forged(text):
    """The signed cookie with its value replaced by `text` (keeping the signature)."""
    encoded = base64.b64encode(text.encode()).decode()
    return "|".join([version, *fields[:3], f"{len(encoded)}:{encoded}", signature])


def signed_by_the_server(cookie, value, days_ago=0):
    """A cookie's value as this server signs it (with its secret), as if `days_ago` days ago."""
    return tornado.web.create_signed_value(old_secret, cookie, value,
                                           clock=lambda: time.time() - days_ago * 86400).decode()


cases = {
    "the cookie the server signed": f"name={signed}",
    "the value changed to Eve": f"name={forged('Eve')}",
    "signed for another cookie": f"name={signed_by_the_server('message', 'Eve')}",
    "signed 40 days ago": f"name={signed_by_the_server('name', 'Ada', days_ago=40)}",
    "a copy, from another client": f"name={signed}",
}
for case, cookie_header in cases.items():
    print(f"{case:30} -> {await whoami(cookie_url, cookie_header)}")

# %% [markdown]
# - **Changed, refused.** Any change to the value, the timestamp or the name breaks the
#   signature. The cookie's name is signed too: a value signed for one cookie is
#   worthless in another, so what a visitor may choose in one cannot sign them in.
# - **Too old, refused.** `get_signed_cookie` refuses a signature older than
#   `max_age_days` (31 by default), whatever the browser was told: the cookie's
#   expiry (`expires_days=30` by default) is the browser's to keep, and a thief's
#   browser does not.
# - **A copy works.** The signature says the server made this cookie, not who sends
#   it. Against theft: `httponly=True` (scripts cannot read it), `secure=True` over
#   HTTPS (it never crosses the network in clear), a short `max_age_days`.
#
# **Changing the secret.** A `cookie_secret` that leaked must change, and every cookie
# signed with it becomes worthless at once: every visitor is logged out. To change it
# gently, make the setting a dictionary of numbered secrets and name the current one
# with `key_version`: new cookies are signed with it, and cookies signed with any
# secret still in the dictionary are accepted. A cookie says which key signed it (the
# key version field above; a plain-string secret counts as key 0), so the application
# can sign it again with the new key; once that is done, or when the leak is urgent,
# remove the old secret.

# %%
new_secret = secrets.token_hex(32)
rotating_url = await session.serve("the cookie app, two keys", make_cookie_app({0: old_secret, 1: new_secret}, key_version=1))
retired_url = await session.serve("the cookie app, new key only", make_cookie_app({1: new_secret}, key_version=1))
resigned = set_cookies(await fetch(f"{rotating_url}/remember", method="POST", body="name=Ada"))["name"]
for label, base_url in [("secrets {0: old, 1: new}", rotating_url), ("secrets {1: new}", retired_url)]:
    for cookie, value in [("signed with the old key", signed), ("signed with the new key", resigned)]:
        print(f"{label:24} | {cookie}: {await whoami(base_url, f'name={value}')}")

# %% [markdown]
# **Try it:** change one character of the signature, or of the timestamp, and send it.

# %%
try_cookie = signed[:-1] + ("0" if signed[-1] != "0" else "1")  # the signature's last digit changed
print(await whoami(cookie_url, f"name={try_cookie}"))

# %% [markdown]
# ## Who is asking: `current_user`
#
# `self.current_user` is a property. The first time a request reads it, Tornado calls
# the handler's `get_current_user()` and keeps the answer for the rest of the request;
# a request that never reads it never calls it. `render()` reads it (templates get
# `current_user` in their namespace), so does `@authenticated`.
#
# `get_current_user()` may not be a coroutine, so it cannot wait for a database. When
# finding the user needs an `await`, do it in `prepare()`, which Tornado awaits before
# the method, and assign `self.current_user`: then `get_current_user()` is never called.
#
# Below, `get_current_user()` notes each call. Four handlers: one that never asks who
# is asking, one that asks twice, one that renders a template, and one that loads the
# account in `prepare()`. `find_account()` stands for a database: a dictionary, behind
# an `await`, as `await db.accounts.find_one({"_id": name})` would be.

# %%
ACCOUNTS = {"ada": {"name": "Ada", "admin": True}, "bob": {"name": "Bob", "admin": False}}
calls = []  # the path of each request that called get_current_user()


async def find_account(name):
    """The account called `name`, or None; a database query in a real application."""
    await asyncio.sleep(0)  # a database answers later: the loop serves others meanwhile
    return ACCOUNTS.get(name)


class UserHandler(RequestHandler):
    def get_current_user(self):
        calls.append(self.request.path)
        name = self.get_signed_cookie("user")
        return name and name.decode()


class NeverAsks(UserHandler):
    def get(self):
        self.write("a page for anyone")


class AsksTwice(UserHandler):
    def get(self):
        self.write(f"{self.current_user}, and again {self.current_user}")


class RendersATemplate(UserHandler):
    def get(self):
        self.render("hello.html")


class LoadsInPrepare(UserHandler):
    async def prepare(self):
        name = self.get_signed_cookie("user")
        self.current_user = await find_account(name.decode()) if name else None

    def get(self):
        self.write(f"{self.current_user}")


write("templates/hello.html", "Hello, {{ current_user or 'stranger' }}.")
user_secret = secrets.token_hex(32)
user_url = await session.serve("the current_user app", Application(
    [(r"/never", NeverAsks), (r"/twice", AsksTwice), (r"/render", RendersATemplate), (r"/prepare", LoadsInPrepare)],
    cookie_secret=user_secret, template_path=folder / "templates"))
ada_cookie = "user=" + tornado.web.create_signed_value(user_secret, "user", "ada").decode()
for path in ("/never", "/twice", "/render", "/prepare"):
    calls.clear()
    response = await fetch(user_url + path, headers={"Cookie": ada_cookie})
    print(f"GET {path:9}: {response.body.decode()!r:60} get_current_user() called {len(calls)} time(s)")

# %% [markdown]
# As said: no call when nobody asks, one call for two reads, one for the template, and
# none at all when `prepare()` set `current_user`, which here is the whole account.
# Loading it at each request costs a query, and buys something a signed cookie alone
# cannot give: an account deleted or disabled on the server stops working at once,
# even with a genuine cookie.
#
# ## Passwords need a slow hash
#
# A login compares the password typed with what was stored when the account was
# made. Store the password itself, and whoever reads the database (a backup, a
# leak) has every password, which people reuse elsewhere. Store a hash, and the
# attacker must guess: hash each candidate, compare. So the hash must be *slow*:
# SHA-256 is built to be fast. And *salted*: a random salt stored with each hash makes
# two equal passwords hash differently, so a guess tests one account, not all.
#
# `hashlib.scrypt`, in Python's standard library, is such a hash: its cost `n` sets how
# much work and memory one hash takes, for us and for the attacker alike. (Argon2id,
# from the `argon2-cffi` package, is the first choice of OWASP's Password Storage Cheat
# Sheet, scrypt the second; bcrypt is older.) We store the parameters with the hash,
# so the cost can be raised later for new passwords without breaking the old ones.

# %%
def scrypt(password, salt, n, r):
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=1, dklen=32,
                          maxmem=2 * 128 * n * r + 2**20)  # OpenSSL refuses over 32 MiB unless allowed more


def hash_password_blocking(password, n=SCRYPT_N, r=SCRYPT_R):
    """What to store for `password`: scrypt$n$r$salt$hash, a new random salt each time."""
    salt = os.urandom(16)
    return f"scrypt${n}${r}${salt.hex()}${scrypt(password, salt, n, r).hex()}"


def verify_password_blocking(password, stored):
    """True if `password` hashes to `stored`, with the parameters and salt stored with it."""
    _, n, r, salt, digest = stored.split("$")
    return hmac.compare_digest(scrypt(password, bytes.fromhex(salt), int(n), int(r)), bytes.fromhex(digest))


def timed(function, *args, tries=5):
    """The median time of `function(*args)`, in seconds."""
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


stored = hash_password_blocking("correct horse")
print("stored:", stored[:60] + "...")
print("the same password again:", hash_password_blocking("correct horse")[:60] + "...")
print("verify the right password:", verify_password_blocking("correct horse", stored),
      "| a wrong one:", verify_password_blocking("horse correct", stored))
sha256_seconds = timed(lambda: hashlib.sha256(b"correct horse").digest(), tries=1000)
scrypt_seconds = timed(verify_password_blocking, "correct horse", stored)
print(f"one SHA-256: {sha256_seconds * 1e6:.1f} µs, {1 / sha256_seconds:,.0f} guesses a second on one core")
print(f"one scrypt (n={SCRYPT_N}, r={SCRYPT_R}): {scrypt_seconds * 1000:.0f} ms, "
      f"{1 / scrypt_seconds:,.0f} guesses a second on one core, {128 * SCRYPT_N * SCRYPT_R / 2**20:.0f} MiB each")
print(f"each guess costs {scrypt_seconds / sha256_seconds:,.0f} times more with scrypt")

# %% [markdown]
# Two hashes of one password differ (the salt), and both verify. `hmac.compare_digest`
# compares in a time that does not depend on where the first difference is.
#
# Tens of thousands of times fewer guesses a second for the attacker, and for us a
# few tens of milliseconds per login: that is the trade. (An attacker with graphics
# cards runs SHA-256 far faster than one core; scrypt's memory, needed for each guess,
# is what holds such hardware back.) OWASP's cheat sheet asks for at least
# `n` = 2<sup>17</sup> with `r` = 8, 128 MiB per hash; the default here is eight times
# less, to keep this notebook light on a shared machine.
#
# **Try it:** time the cost OWASP asks for (it takes 128 MiB, for a moment).

# %%
try_n = 2**17
print(f"n={try_n}: {timed(scrypt, 'correct horse', b'salt' * 4, try_n, SCRYPT_R, tries=1) * 1000:.0f} ms a hash")

# %% [markdown]
# ## A slow hash in a server: on the executor
#
# Tens of milliseconds of CPU with no `await` inside: run in a handler, it holds the
# event loop as a thumbnail did in notebook 03. So run it on a thread:
# `IOLoop.current().run_in_executor(pool, function, *args)` gives it to a pool of
# threads and awaits the result. A pool of our own, as part 2 has for thumbnails, not
# asyncio's default one (`None`): that one is shared with whatever else the process
# hands it, and sized for waiting, not for CPU work (`min(32, cores + 4)` threads).
# `hashlib.scrypt` lets go of Python's global lock (the GIL) while it works, so its
# thread runs on another core.
#
# A small application hashes the password it is sent, at two addresses: on the loop,
# and on the executor. While `LOGINS` passwords are sent at once to each, a *lag probe*
# (notebook 03's) asks the loop to wake it every 5 ms and notes how late it wakes.
#
# **Predict, then run:** on the loop, how late will the probe wake at worst?

# %%
hashing_pool = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="scrypt")


async def hash_password(password):
    return await IOLoop.current().run_in_executor(hashing_pool, hash_password_blocking, password)


async def verify_password(password, stored):
    return await IOLoop.current().run_in_executor(hashing_pool, verify_password_blocking, password, stored)


class HashOnTheLoop(RequestHandler):
    def post(self):
        self.write(hash_password_blocking(self.get_body_argument("password")))


class HashOnTheExecutor(RequestHandler):
    async def post(self):
        self.write(await hash_password(self.get_body_argument("password")))


hash_url = await session.serve("the hashing app", Application(
    [(r"/on-the-loop", HashOnTheLoop), (r"/on-the-executor", HashOnTheExecutor)]))


async def lag_probe(stop, start):
    """(seconds since `start`, lag in ms) each time a sleep of PROBE_INTERVAL ends, until `stop` is set."""
    samples = []
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL)
        woke = time.perf_counter()
        samples.append((woke - start, (woke - before - PROBE_INTERVAL) * 1000))
    return samples


async def lag_while_hashing(where):
    """The probe's samples while LOGINS passwords are hashed at once `where`, and when the requests ran."""
    await fetch(f"{hash_url}/{where}", method="POST", body="password=warm-up")  # threads ready
    stop, start = asyncio.Event(), time.perf_counter()
    probe = asyncio.create_task(lag_probe(stop, start))
    await asyncio.sleep(0.1)
    began = time.perf_counter() - start
    responses = await asyncio.gather(*(fetch(f"{hash_url}/{where}", method="POST", body=f"password=secret-{n}")
                                       for n in range(LOGINS)))
    ended = time.perf_counter() - start
    await asyncio.sleep(0.1)
    stop.set()
    samples = await probe
    lags = [lag for _, lag in samples]
    print(f"{where}: {[response.code for response in responses]} in {ended - began:.2f} s; lag median "
          f"{statistics.median(lags):.1f} ms, worst {max(lags):.0f} ms")
    return {"samples": samples, "requests": (began, ended)}


runs = {where: await lag_while_hashing(where) for where in ("on-the-loop", "on-the-executor")}

figure, axes = plt.subplots(2, 1, figsize=(8, 4.4), sharex=True, sharey=True, layout="constrained")
for ax, (where, run), color in zip(axes, runs.items(), (lab.BAD, lab.GOOD)):
    times, lags = zip(*run["samples"])
    ax.axvspan(*run["requests"], color=lab.GREY, alpha=0.15, linewidth=0, label="requests in flight")
    ax.vlines(times, 0, lags, color=color, linewidth=1.5, label="how late one wake-up was")
    ax.axhline(scrypt_seconds * 1000, color=lab.GREY, linestyle=":", linewidth=1.5, label="one hash, timed alone")
    ax.set_title(f"hashing {where.replace('-', ' ')}: worst lag {max(lags):.0f} ms", loc="left", fontsize=10)
    ax.set_ylabel("lag (ms)")
    ax.legend(loc="upper right", fontsize=8)
axes[-1].set_xlabel("time (seconds since the probe started)")
figure.suptitle(f"How late a {PROBE_INTERVAL * 1000:.0f} ms sleep wakes up while {LOGINS} passwords are hashed "
                f"with scrypt (n={SCRYPT_N}, r={SCRYPT_R})", fontsize=10)
plt.show()

# %% [markdown]
# On the loop, the hashes ran one after the other on the loop's thread, and nothing
# else did: the probe woke once they were all done, about `LOGINS` hashes late. Every
# visitor of the site would have waited as long. On the executor, the loop went on
# waking the probe on time, give or take a few milliseconds, while threads did the
# hashing on both cores.
#
# ## A login: `@authenticated`, `next`, a signed cookie, a logout
#
# Everything together. The application keeps the accounts above, each with its
# password hashed on the executor; `BaseHandler.prepare()` loads the account the
# signed `user` cookie names. Its routes:
#
# - `GET /`, decorated with `@tornado.web.authenticated`: a greeting for the signed
#   in. For anyone else, a GET (or HEAD) is redirected to the `login_url` setting, with
#   `?next=` and the page asked for; any other method gets a 403.
# - `GET /login` shows the form; `POST /login` checks the password and, if right, sets
#   the signed cookie and sends the visitor on to `next`, if `next` is a path of this
#   site (a login that sends people to any URL helps phishing). If wrong, the form
#   again, with the same message for a wrong name and a wrong password.
# - `POST /logout` clears the cookie.
#
# XSRF protection (part 2's lesson) is left out to keep the requests short; a real
# login form needs it like any other.

# %%
PASSWORDS = {"ada": "analytical engine", "bob": "difference engine"}
for account_name, password in PASSWORDS.items():
    ACCOUNTS[account_name]["password"] = await hash_password(password)


async def check_login(name, password):
    """True if `password` is the password of the account `name`."""
    account = await find_account(name)
    if account is None:
        return False
    return await verify_password(password, account["password"])


def local_path(url):
    """`url` if it is a path on this site, else "/". ("//host/" and "/\\host/" lead elsewhere.)"""
    return url if url.startswith("/") and not url.startswith(("//", "/\\")) else "/"


class BaseHandler(RequestHandler):
    async def prepare(self):
        name = self.get_signed_cookie("user")
        self.current_user = await find_account(name.decode()) if name else None


class HomeHandler(BaseHandler):
    @authenticated
    def get(self):
        self.render("home.html")

    @authenticated
    def post(self):
        self.write("saved")


class LoginHandler(BaseHandler):
    def get(self):
        self.render("login.html", error=None, next=self.get_query_argument("next", "/"))

    async def post(self):
        name, next_url = self.get_body_argument("name", ""), self.get_body_argument("next", "/")
        if not await check_login(name, self.get_body_argument("password", "")):
            self.render("login.html", error="Wrong name or password.", next=next_url)
            return
        # Behind HTTPS, add secure=True: the cookie then never crosses the network in clear.
        self.set_signed_cookie("user", name, httponly=True, samesite="Lax")
        self.redirect(local_path(next_url))


class LogoutHandler(BaseHandler):
    def post(self):
        self.clear_cookie("user")
        self.redirect("/login")


write("templates/home.html", "<p>Hello, {{ current_user['name'] }}.</p>")
write("templates/login.html", """
{% if error %}<p class="error">{{ error }}</p>{% end %}
<form method="post" action="/login">
  <input name="name"> <input name="password" type="password">
  <input type="hidden" name="next" value="{{ next }}"> <button>Log in</button>
</form>
""")
login_settings = dict(cookie_secret=secrets.token_hex(32), login_url="/login", template_path=folder / "templates")
login_url = await session.serve("the login app", Application(
    [(r"/", HomeHandler), (r"/login", LoginHandler), (r"/logout", LogoutHandler)], **login_settings))


async def log_in(name, password, next_url="/"):
    """POST /login; the response."""
    form = urllib.parse.urlencode({"name": name, "password": password, "next": next_url})
    return await fetch(f"{login_url}/login", method="POST", body=form)


def summary(response):
    """Status, where it redirects, the cookies it sets, and the start of its page."""
    parts = [str(response.code)]
    if "Location" in response.headers:
        parts.append(f"Location: {response.headers['Location']}")
    parts += [f"sets {name}={value[:24] + '...' if value else '(empty: cleared)'}"
              for name, value in set_cookies(response).items()]
    if response.body:
        parts.append(repr(response.body.decode().strip()[:60]))
    return " | ".join(parts)


print("GET / with no cookie:   ", summary(await fetch(login_url + "/")))
print("GET /login?next=%2F:    ", summary(await fetch(login_url + "/login?next=%2F")))
print("wrong password:         ", summary(await log_in("ada", "engine")))
print("no such name:           ", summary(await log_in("eve", "engine")))
response = await log_in("ada", PASSWORDS["ada"])
print("right password:         ", summary(response))
ada = {"Cookie": f"user={set_cookies(response)['user']}"}
print("GET / with the cookie:  ", summary(await fetch(login_url + "/", headers=ada)))
print("next=//evil.example/:   ", summary(await log_in("ada", PASSWORDS["ada"], "//evil.example/")))

# %% [markdown]
# Two more. A POST to `/` from someone not signed in gets a 403, not a redirect (a
# redirect would turn the POST into a GET and lose its body): Tornado logs a
# **warning** line for it below the cell. Then Ada logs out: the response clears the
# cookie, and a browser drops it. But a copy of the cookie taken before (by a thief,
# or kept by a careless client) still signs in: the server stored nothing, so it has
# nothing to forget. Where that matters, keep sessions on the server (a random id in
# the cookie, a document in the database that logout deletes) or put a version in the
# account that logout increments and `prepare()` compares.

# %%
print("POST / with no cookie:   ", summary(await fetch(login_url + "/", method="POST", body="")))
print("POST /logout:            ", summary(await fetch(login_url + "/logout", method="POST", body="", headers=ada)))
print("GET / with the old copy: ", summary(await fetch(login_url + "/", headers=ada)))

# %% [markdown]
# ## What a login's time gives away
#
# `check_login()` returns at once for a name that has no account, and only after a
# hash for one that has. The message is the same, but the time is not. Timing
# `TIMING_TRIES` failed logins of each kind, in turns:

# %%
async def login_seconds(name):
    start = time.perf_counter()
    await log_in(name, "not the password")
    return time.perf_counter() - start


timings = {"ada (has an account)": [], "eve (has none)": []}
for _ in range(TIMING_TRIES):
    for who in timings:
        timings[who].append(await login_seconds(who.split()[0]))
for who, seconds in timings.items():
    print(f"a failed login as {who:22}: median {statistics.median(seconds) * 1000:5.1f} ms "
          f"(from {min(seconds) * 1000:.1f} to {max(seconds) * 1000:.1f})")

# %% [markdown]
# Anyone can tell which names have accounts, then try passwords on those only. The
# remedy, exercise 3: do the same work either way.
#
# ## Exercises
#
# Each exercise gives you a cell to complete, then a cell that checks your answer:
# run it, and it says "solved" or what is still wrong. The solution is folded away
# in the cell after the check.
#
# ### Exercise 1: a link that stays a link
#
# Rewrite `templates/search-link.html` so that it is a link to `/search` with the
# visitor's text as its `q` parameter, and that text as the link's text: one `<a>`
# with one attribute, `href`, whatever the visitor typed. The check fetches it with
# visitors such as `cats & dogs` and `x onmouseover=alert(1)`, and parses each page as
# a browser would.

# %%
write("templates/search-link.html", """
<a href=/search?q={{ visitor }}>{{ visitor }}</a>
""")  # your turn

# %%
async def check_exercise_1():
    problems = []
    for visitor in ["Ada Lovelace", "cats & dogs", "x onmouseover=alert(1)", '"><script>alert(1)</script>',
                    "100% #1 a/b?c=d"]:
        page = (await fetch(f"{template_url}/search-link?visitor={urllib.parse.quote(visitor)}")).body.decode()
        parsed = Parsed(page)
        hrefs = [urllib.parse.urlsplit(attributes.get("href", "")) for _, attributes in parsed.tags]
        problems += [
            lab.expect(f"the elements for {visitor!r}, and their attributes",
                       [(tag, sorted(attributes)) for tag, attributes in parsed.tags], [("a", ["href"])]),
            lab.expect(f"the link's path and q for {visitor!r}",
                       [(href.path, urllib.parse.parse_qs(href.query).get("q")) for href in hrefs],
                       [("/search", [visitor])]),
            lab.expect(f"the text of the link for {visitor!r}", parsed.texts, [visitor]),
        ]
    return lab.check("Exercise 1", problems)

await check_exercise_1();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution: quotes around the attribute, url_escape for the part of the URL
write("templates/search-link.html", """
<a href="/search?q={{ url_escape(visitor) }}">{{ visitor }}</a>
""")

await check_exercise_1();

# %% [markdown]
# ### Exercise 2: for admins only
#
# Complete `AdminHandler`, the page `GET /admin`: a visitor not signed in is sent to
# the login page, as by `@authenticated`; a signed-in account that is not an admin
# (`current_user["admin"]` is false) gets a 403; an admin gets the page. It inherits
# the login application's `BaseHandler`, so `prepare()` has loaded `current_user`. The
# check serves it in an application with the login app's settings, and asks as no
# one, as Bob and as Ada. Once solved, Bob's 403 makes Tornado log a **warning** line.

# %%
class AdminHandler(BaseHandler):
    @authenticated
    def get(self):
        self.write(f"the admin page, for {self.current_user['name']}")  # your turn

# %%
async def check_exercise_2():
    admin_url = await session.serve("exercise 2's app", Application([(r"/admin", AdminHandler)], **login_settings))
    cookies = {}
    for name in ("ada", "bob"):
        response = await log_in(name, PASSWORDS[name])
        cookies[name] = {"Cookie": f"user={set_cookies(response)['user']}"}
    anonymous = await fetch(admin_url + "/admin")
    bob, ada = [await fetch(admin_url + "/admin", headers=cookies[name]) for name in ("bob", "ada")]
    return lab.check("Exercise 2", [
        lab.expect("no one: the status and where it leads", (anonymous.code, anonymous.headers.get("Location")),
                   (302, "/login?next=%2Fadmin")),
        lab.expect("Bob, no admin: the status", bob.code, 403),
        lab.expect("Ada, an admin: the status", ada.code, 200),
    ])

await check_exercise_2();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution: @authenticated first (signed in?), then the account's role (allowed?)
class AdminHandler(BaseHandler):
    @authenticated
    def get(self):
        if not self.current_user["admin"]:
            raise HTTPError(403)
        self.write(f"the admin page, for {self.current_user['name']}")

await check_exercise_2();

# %% [markdown]
# ### Exercise 3: as slow for a name nobody has
#
# Rewrite `check_login(name, password)` so that a name without an account costs one
# scrypt hash, run on the executor, as a known name does, and still returns False.
# The login application calls `check_login()` at each request, so your version takes
# over at once. The check counts the calls to `hashlib.scrypt` (keep calling it as
# `hashlib.scrypt`, through `verify_password()`) and notes their threads, while it logs
# in over HTTP.

# %%
async def check_login(name, password):
    account = await find_account(name)
    if account is None:
        return False
    return await verify_password(password, account["password"])  # your turn

# %%
async def check_exercise_3():
    real_scrypt, loop_thread, threads = hashlib.scrypt, threading.current_thread(), []

    def noting_the_thread(*args, **kwargs):  # hashlib.scrypt, noting the thread it runs on
        threads.append("the loop's" if threading.current_thread() is loop_thread else "another")
        return real_scrypt(*args, **kwargs)

    problems = []
    hashlib.scrypt = noting_the_thread
    try:
        for name, password, signed_in in [("ada", PASSWORDS["ada"], True), ("ada", "wrong", False),
                                          ("eve", "wrong", False), ("", "", False)]:
            threads.clear()
            response = await log_in(name, password)
            problems += [
                lab.expect(f"signed in as {name!r} with {password!r}", "user" in set_cookies(response), signed_in),
                lab.expect(f"threads of the scrypt calls for {name!r}", threads, ["another"]),
            ]
    finally:
        hashlib.scrypt = real_scrypt
    return lab.check("Exercise 3", problems)

await check_exercise_3();

# %% jupyter={"source_hidden": true} tags=["solution"]
# A solution: with no account, verify against a hash of a random password, and say no
UNUSED_HASH = hash_password_blocking(secrets.token_hex(16))


async def check_login(name, password):
    account = await find_account(name)
    if account is None:
        await verify_password(password, UNUSED_HASH)  # the same work as for a real account
        return False
    return await verify_password(password, account["password"])

await check_exercise_3();

# %% [markdown]
# ## Recap
#
# - Templates are Python: `{{ expression }}`, and `{% %}` statements closed by
#   `{% end %}`. `{% extends %}` and `{% block %}` share a frame, `{% include %}` pastes
#   a file in, a `UIModule` is a reusable piece with its own CSS and JavaScript, and
#   `static_url` names a file by its hash, so browsers may keep it for ten years.
# - `{{ }}` escapes HTML; that is enough for text and *quoted* attributes. Add
#   `url_escape` for a part of a URL, check the scheme of a whole URL, and write JSON
#   into a script with `{% raw json_encode(...) %}`.
# - A signed cookie cannot be changed or moved to another name, and expires on the
#   server after `max_age_days`; it can be read, and copied, and a logout does not
#   revoke a copy. `key_version` changes the secret without logging everyone out.
# - `current_user` is computed once, lazily, by `get_current_user()`; when that needs
#   an `await`, set it in `prepare()`. `@authenticated` redirects a GET or HEAD to
#   `login_url` with `next`, and answers other methods with 403.
# - Passwords get a slow, salted hash, such as `hashlib.scrypt`, run on the executor;
#   and a login takes as long for a name without an account.
#
# ## Review questions
#
# 1. Why is `<a title={{ name }}>` unsafe when `<a title="{{ name }}">` is safe, though
#    both escape `name`?
# 2. Why write JSON into a `<script>` with `{% raw json_encode(data) %}` rather than
#    `{{ json_encode(data) }}`, or `{% raw json.dumps(data) %}`?
# 3. After `style.css` changes, a running server's pages keep the old `?v=`. Is that a
#    problem, and what ends it?
# 4. A signed cookie holds `user=ada`. Can its holder read it? Change it to `bob`? Use
#    it from another computer? Use it after Ada logged out?
# 5. Why can't `get_current_user()` query MongoDB, and where does that query go?
# 6. A password hash of 60 ms runs in a handler. What do all the other visitors see,
#    and what is the fix?
#
# <details><summary>Answers</summary>
#
# 1. Escaping does not touch spaces or `=`. Without quotes, a space ends the value, and
#    `x onmouseover=alert(1)` adds an event handler; within quotes, only `"` could end
#    the value, and it is escaped.
# 2. A browser does not decode entities inside `<script>`, so `{{ }}`'s `&quot;` breaks
#    the JavaScript; and `json.dumps` leaves `</script>` as it is, which ends the script
#    early, letting what follows run. `json_encode` writes `<\/`.
# 3. Only until the process restarts or `StaticFileHandler.reset()` runs: meanwhile the
#    new file is served at the old URL, which browsers may have cached for ten years,
#    so some visitors keep the old style. Deploy by restarting (or run with `debug=True`
#    while developing).
# 4. Read it: yes (base64). Change it: no, the signature breaks. From another computer:
#    yes, the signature does not say who sends it. After logout: yes, unless the server
#    keeps state it checks (a session document, an account's session version).
# 5. It may not be a coroutine, so it cannot `await`. Load the user in `async def
#    prepare()` and assign `self.current_user`.
# 6. For each login, everyone's requests wait those 60 ms, and logins arriving together
#    add up. Run the hash on a pool of threads of its own, sized to the cores:
#    `IOLoop.current().run_in_executor(pool, ...)`, not the default executor (`None`),
#    which is shared and sized for waiting.
#
# </details>
#
# ## Stop everything
#
# The servers, and the folder of templates and static files. Running this cell twice
# is fine.

# %%
hashing_pool.shutdown()  # our pool ends with the notebook; the session stops the rest

# %%
await session.close()

# %% [markdown]
# ---
# Previous: [notebook 05, from Motor to PyMongo's async API](05_motor_to_pymongo_async.ipynb) ·
# Next: back to [the notebooks' README](README.md), or on to
# [part 4's lesson](../part4_production/README.md), running the course's app for real
