"""Part 1, exercise 2: search by name.

The home page gets a search form, <form class="search" method="get" action="/">, with
a text box <input name="q">. /?q=TEXT lists the 20 newest images whose name contains
TEXT, whatever the case ("cat" finds "Cat.png"), and the box keeps TEXT as its value.
TEXT is plain text, not a pattern: "a.b" finds "a.b.png" but not "axb.png", and "("
is no error. With no q, or an empty one, the page lists the newest, as before.
"""

import re
from urllib.parse import quote

from coursekit.clients import GalleryParser, answer
from coursekit.images import image_bytes

RUNS_ON = ["part1_basic"]

NAMES = ["Cat.png", "concat.png", "dog.png", "a.b.png", "axb.png", "(draft).png"]


async def listed(client, path):
    """The page at `path`, and the names it lists."""
    response = await client.fetch(path)
    assert response.code == 200, f"GET {path} should list what it finds (200); it answered {answer(response)}"
    parser = GalleryParser()
    parser.feed(response.body.decode())
    return response.body.decode(), [name for _, name in parser.items]


async def test_search_by_name_in_any_case(client):
    for name in NAMES:
        response = await client.upload(image_bytes(), name)
        assert response.code == 302, f"uploading {name} should work as before (302); it answered {answer(response)}"
    page, names = await listed(client, "/")
    assert re.search(r'<form class="search" method="get" action="/">', page), (
        'the home page should have a search form: <form class="search" method="get" action="/">')
    assert re.search(r'<input [^>]*name="q"', page), 'the search form should have a text box: <input name="q">'
    assert names == NAMES[::-1], "with no q, the home page lists the newest, as before"

    for query, expected in [("CAT", ["concat.png", "Cat.png"]), ("a.b", ["a.b.png"]), ("(", ["(draft).png"]),
                            ("", NAMES[::-1])]:
        page, names = await listed(client, f"/?q={quote(query)}")
        assert names == expected, f"/?q={query} should list {expected} (names containing {query!r}); it lists {names}"
    page, _ = await listed(client, "/?q=CAT")
    assert re.search(r'<input [^>]*value="CAT"', page), 'the search box should keep what was searched: value="CAT"'
