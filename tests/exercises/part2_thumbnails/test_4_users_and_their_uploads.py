"""Part 2, exercise 4: users and their uploads.

- GET /login: a page of its own (login.html, extending base.html), with a form
  posted to /login: the XSRF field, a text box `name`, a hidden field `next` (the
  page's `next` argument). POST /login with a name of 1 to 40 characters sets a
  signed, HttpOnly cookie `user` holding it (set_signed_cookie) and redirects (302)
  to `next` if it is a path of this site (it starts with "/", not with "//" nor
  "/\\", and holds printable ASCII only: no space, tab or line break), else to /.
  Any other name: 400. POST /logout clears the cookie and
  redirects to /.
- get_current_user() gives the name in the cookie, and the setting `login_url` is
  "/login". Every page says who is signed in, `<p class="user">Signed in as ann</p>`,
  with a sign-out button (a form posted to /logout).
- Each upload records its owner in its `imgs` document: `owner`, the name of who
  uploaded it, or None if nobody was signed in.
- GET /mine (@tornado.web.authenticated) lists your uploads, newest first, as the
  home page does. Signed out, it redirects to /login?next=%2Fmine.
- On both pages, your uploads have a delete button:
  <form class="delete" method="post" action="/imgs/<id>/delete"> with the XSRF field.
  POST /imgs/<id>/delete (@tornado.web.authenticated) deletes the image, its two
  GridFS files (original and thumbnail, every chunk) and its `imgs` document, and
  redirects to /mine (302). Signed out: 403 (what @authenticated does for a POST).
  Someone else's image, or one that nobody owns: 403, "...not yours...". An id that
  is not valid, or that no image has: the 404 page of /imgs/<id>/orig. Deletes of
  one image sent at the same moment: one redirects to /mine, the others to /mine
  too or, once the image is gone, get that 404; and the log says nothing was left
  behind, since nothing was.
"""

import asyncio
import re
from urllib.parse import urlencode

from bson import ObjectId

from coursekit.clients import Client, answer, error_message
from coursekit.images import image_bytes

RUNS_ON = ["part2_thumbnails"]

NOTHING = {"fs.files": 0, "fs.chunks": 0, "imgs": 0}


async def sign_in(client, name, next_url=None):
    """POST /login as the page's form does; the response."""
    await client.fetch("/login")  # the form, and the XSRF cookie
    fields = {"name": name, **({"next": next_url} if next_url is not None else {})}
    return await client.fetch("/login", "POST", urlencode(fields))


async def visitor(client, name=None):
    """A new visitor of the same site, signed in as `name` if given."""
    other = Client(client.base_url, client.db)
    await other.visit()
    if name:
        response = await sign_in(other, name)
        assert response.code == 302, (
            f"POST /login with the name {name!r} should redirect (302); it got {answer(response)}")
    return other


async def upload(client, name):
    response = await client.upload(image_bytes(size=(300, 200)), name)
    assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"
    return await client.db.imgs.find_one({"filename": name})


async def signed_in_as(client):
    """The name that <p class="user"> of the home page gives, or None."""
    page = (await client.fetch("/")).body.decode()
    found = re.search(r'<p class="user">\s*Signed in as (.*?)\s*</p>', page, re.S)
    return found and found.group(1)


async def test_signing_in_with_a_name(client):
    response = await client.fetch("/login")
    assert response.code == 200, f"GET /login should show the sign-in page (200); it answered {answer(response)}"
    page = response.body.decode()
    assert "<header>" in page, "the sign-in page should extend base.html: its <header> is missing"
    form = re.search(r'<form [^>]*action="/login".*?</form>', page, re.S)
    assert form, 'the sign-in page should have a form posted to /login: <form method="post" action="/login">'
    for field in ("_xsrf", "name", "next"):
        assert f'name="{field}"' in form.group(0), f'the sign-in form should have a field name="{field}"'

    response = await sign_in(client, "ann")
    assert response.code == 302 and response.headers.get("Location") == "/", (
        f"POST /login with a name should sign in and redirect to / (302); it answered {answer(response)}")
    cookie = next((header for header in response.headers.get_list("Set-Cookie") if header.startswith("user=")), "")
    assert cookie, "signing in should set a cookie named user"
    assert not cookie.startswith("user=ann;"), "the user cookie should be signed (set_signed_cookie), not the bare name"
    assert "httponly" in cookie.lower(), "the user cookie should be HttpOnly: no script of a page needs to read it"
    assert await signed_in_as(client) == "ann", (
        'every page should say who is signed in: <p class="user">Signed in as ann</p>')

    forger = Client(client.base_url, client.db)
    forger.cookies["user"] = "ann"  # a cookie written by hand, not signed with our cookie_secret
    assert await signed_in_as(forger) is None, "a user cookie that we did not sign should sign nobody in"


async def test_where_signing_in_leads(client):
    response = await client.fetch("/mine")
    assert response.code == 302 and response.headers.get("Location") == "/login?next=%2Fmine", (
        "signed out, GET /mine should redirect to /login?next=%2Fmine (@tornado.web.authenticated, with "
        f"login_url set); it answered {answer(response)}")
    page = (await client.fetch("/login?next=%2Fmine")).body.decode()
    assert re.search(r'<input [^>]*name="next" [^>]*value="/mine"|<input [^>]*value="/mine" [^>]*name="next"', page), (
        'the sign-in form of /login?next=%2Fmine should carry it: <input type="hidden" name="next" value="/mine">')
    for next_url, location in [("/mine", "/mine"), ("//evil.example/", "/"), ("/\\evil.example/", "/"),
                               ("https://evil.example/", "/"), ("/\t/evil.example/", "/"), ("/\n/x", "/")]:
        response = await sign_in(await visitor(client), "ann", next_url)
        assert response.code == 302 and response.headers.get("Location") == location, (
            f"signing in with next={next_url!r} should redirect to {location}"
            f"{'' if location == next_url else ': only a path of this site is safe'}; "
            f"it answered {answer(response)}")
    for name in ("", "x" * 41):
        response = await sign_in(await visitor(client), name)
        assert response.code == 400, f"POST /login with a name of {len(name)} characters should be a 400"


async def test_signing_out(client):
    client = await visitor(client, "ann")
    page = (await client.fetch("/")).body.decode()
    assert re.search(r'<form [^>]*action="/logout"', page), "signed in, the page should have a form posted to /logout"
    response = await client.fetch("/logout", "POST", b"")
    assert response.code == 302 and response.headers.get("Location") == "/", (
        f"POST /logout should sign out and redirect to / (302); it answered {answer(response)}")
    assert await signed_in_as(client) is None, "after POST /logout, nobody should be signed in"


async def test_uploads_record_their_owner_and_mine_lists_yours(client):
    nobody = await upload(client, "nobody's.png")
    ann, bob = await visitor(client, "ann"), await visitor(client, "bob")
    anns = await upload(ann, "ann's.png")
    bobs = await upload(bob, "bob's.png")
    for document, owner in [(nobody, None), (anns, "ann"), (bobs, "bob")]:
        assert "owner" in document and document["owner"] == owner, (
            f"the imgs document of {document['filename']} should say \"owner\": {owner!r}; "
            f"it says {document.get('owner', 'nothing')!r}")
    response = await ann.fetch("/mine")
    assert response.code == 200, f"signed in, GET /mine should list your uploads (200); it answered {answer(response)}"
    assert [name for _, name in await ann.listed("/mine")] == ["ann's.png"], "ann's /mine should list hers only"
    form = re.search(rf'<form class="delete" method="post" action="/imgs/{anns["_id"]}/delete">.*?</form>',
                     response.body.decode(), re.S)
    assert form and 'name="_xsrf"' in form.group(0), (
        f'each of your uploads should have a delete button: <form class="delete" method="post" '
        f'action="/imgs/{anns["_id"]}/delete">, with the XSRF field')


async def test_the_owner_deletes_everything_of_an_upload(client):
    client = await visitor(client, "ann")
    image = await upload(client, "photo.png")
    path = f"/imgs/{image['_id']}/delete"
    refused = await client.fetch(path, "POST", b"", headers={"X-XSRFToken": "wrong"})
    assert refused.code == 403 and await client.stored() != NOTHING, "without the right XSRF token, nothing is deleted"
    response = await client.fetch(path, "POST", b"")
    assert response.code == 302 and response.headers.get("Location") == "/mine", (
        f"POST {path} by its owner should delete it and redirect to /mine (302); it answered {answer(response)}")
    assert await client.stored() == NOTHING, (
        f"nothing of the upload should be left: the original, its thumbnail (files and chunks) and its imgs "
        f"document; left: {await client.stored()}")
    assert (await client.fetch(f"/imgs/{image['_id']}/orig")).code == 404, "a deleted image is a 404"


async def test_deletes_at_the_same_moment(client, caplog):
    client = await visitor(client, "ann")
    image = await upload(client, "photo.png")
    path = f"/imgs/{image['_id']}/delete"
    responses = await asyncio.gather(*(client.fetch(path, "POST", b"") for _ in range(3)))
    codes = sorted(response.code for response in responses)
    assert codes[0] == 302 and set(codes) <= {302, 404}, (
        f"of three deletes of one image at once, one should redirect to /mine, the others too or get a 404 "
        f"once it is gone; they answered {[answer(response) for response in responses]}")
    assert await client.stored() == NOTHING, f"nothing of the upload should be left; left: {await client.stored()}"
    assert "left behind" not in caplog.text, (
        "only one of the deletes finds the image: the others have nothing to delete, and nothing is left "
        f"behind, but the log says: {caplog.text}")


async def test_nobody_else_deletes_an_upload(client):
    anns = await upload(await visitor(client, "ann"), "ann's.png")
    nobodys = await upload(client, "nobody's.png")
    stored = await client.stored()
    bob = await visitor(client, "bob")
    for image in (anns, nobodys):
        response = await bob.fetch(f"/imgs/{image['_id']}/delete", "POST", b"")
        message = error_message(response.body.decode())
        assert response.code == 403 and "not yours" in (message or ""), (
            f'bob deleting {image["filename"]} should get a 403, "...not yours..."; it got {answer(response)}')
    response = await client.fetch(f"/imgs/{anns['_id']}/delete", "POST", b"")
    assert response.code == 403, f"signed out, POST /imgs/<id>/delete should be a 403; it answered {answer(response)}"
    assert await client.stored() == stored, "nothing should be deleted"
    for path, words in [("/imgs/not-an-id/delete", "that id is not valid"),
                        (f"/imgs/{ObjectId()}/delete", "no image with that id")]:
        response = await bob.fetch(path, "POST", b"")
        message = error_message(response.body.decode())
        assert response.code == 404 and words in (message or ""), (
            f'POST {path} should get the 404 page of /imgs/<id>/orig, "...{words}."; '
            f'it got {answer(response)}')
