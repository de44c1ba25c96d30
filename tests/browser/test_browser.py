"""Each stage in headless Chromium: upload a PNG through the form, see it listed
and displayed (as a thumbnail from part 2 on), open the original.

Playwright's sync API runs its own event loop, so this module runs in a pytest
process of its own: `pytest tests/browser` (the README's test command does)."""

import hashlib
import os
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from pymongo import MongoClient

from coursekit.browser import CHROMIUM_ARGS, find_chromium
from coursekit.images import image_bytes
from coursekit.stages import STAGES

RUNS_ON = STAGES  # every stage

# Where the stages that list thumbnails serve them; the others list the original itself.
THUMBNAIL_PATHS = {"part2_thumbnails": "/imgs/{}/thumb", "part3_streaming": "/uploads/{}/thumb",
                   "part4_production": "/uploads/{}/thumb", "part5_live": "/uploads/{}/thumb"}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def javascript():
    """Whether the page runs scripts: a test may say otherwise."""
    return True


@pytest.fixture
def page(browser, stage, program, tmp_path, javascript):
    """A page of a new browser context on the stage, run as a program."""
    context = browser.new_context(base_url=program().url, java_script_enabled=javascript)
    page = context.new_page()
    yield page
    page.screenshot(path=tmp_path / f"{stage}.png", full_page=True)
    context.close()


def test_upload_through_the_form_then_see_and_open_the_image(page, stage):
    png = image_bytes(size=(300, 200), color="royalblue")
    page.goto("/")
    expect(page.locator(".gallery img")).to_have_count(0)

    page.set_input_files("input[name=file]", files=[{"name": "blue.png", "mimeType": "image/png", "buffer": png}])
    page.get_by_role("button", name="Upload").click()

    image = page.locator("a.original img")
    expect(image).to_have_count(1)
    expect(image).to_have_attribute("alt", "blue.png")
    expect(image).to_be_visible()
    # The image really is displayed: the browser fetched and decoded it.
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    href = page.locator("a.original").get_attribute("href")
    natural_size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    if stage in THUMBNAIL_PATHS:
        image_id = href.split("/")[2]
        assert image.get_attribute("src") == THUMBNAIL_PATHS[stage].format(image_id)
        assert natural_size == [128, 85]  # fits in 128x128, in proportion
    else:
        assert image.get_attribute("src") == href
        assert natural_size == [300, 200]

    with page.expect_response(lambda response: urlsplit(response.url).path == href) as original:
        page.locator("a.original").click()
    assert original.value.status == 200
    assert hashlib.sha256(original.value.body()).digest() == hashlib.sha256(png).digest()
    assert page.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]") == [300, 200]


@pytest.mark.runs_on("part3_streaming")
def test_a_big_file_goes_up_with_a_progress_bar_and_comes_back_identical(page):
    data = os.urandom(8 * 1024 * 1024)
    page.goto("/")
    # Every value the progress bar takes, as a fraction of the whole.
    page.evaluate("""() => {
        const bar = document.querySelector("form.upload progress");
        window.progressSeen = [];
        new MutationObserver(() => window.progressSeen.push(bar.value / bar.max))
            .observe(bar, {attributes: true, attributeFilter: ["value"]});
    }""")
    page.set_input_files("input[name=file]",
                         files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": data}])
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("form.upload .status")).to_have_text("Uploaded big.bin (8.0 MiB).", timeout=60_000)
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 1 and seen == sorted(seen), seen  # it only went up, and reached 100%
    expect(page.locator("form.upload progress")).to_be_visible()

    link = page.locator("a.original")
    expect(link).to_have_count(1)
    expect(link.locator("img")).to_have_attribute("alt", "big.bin")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "big.bin"
    with open(download.value.path(), "rb") as file:
        assert hashlib.sha256(file.read()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("javascript", [False])
def test_the_form_works_without_javascript(page):
    page.goto("/")
    page.set_input_files("input[name=file]", files=[{"name": "plain.png", "mimeType": "image/png",
                                                     "buffer": image_bytes(size=(300, 200))}])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("/")  # posted, and sent back to the home page
    expect(page.locator("a.original img")).to_have_attribute("alt", "plain.png")


@pytest.mark.runs_on("part5_live")
def test_an_upload_in_one_page_shows_in_another_without_a_reload(browser, program, mongodb_uri, db_name):
    """Two visitors on a stage of two processes: what one uploads, or a tool deletes,
    appears in (or leaves) the other's page as it happens."""
    running = program("--processes=2")
    pages = [browser.new_context(base_url=running.url).new_page() for _ in range(2)]
    for page in pages:
        page.goto("/")
        page.evaluate("window.notReloaded = true")  # gone if the page reloads
    uploader, watcher = pages
    expect(watcher.locator(".empty")).to_be_visible()
    uploader.set_input_files("input[name=file]", files=[{"name": "live.png", "mimeType": "image/png",
                                                         "buffer": image_bytes(size=(300, 200))}])
    uploader.get_by_role("button", name="Upload").click()

    image = watcher.locator("a.original img")
    expect(image).to_have_attribute("alt", "live.png")
    watcher.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    expect(watcher.locator(".gallery .size")).to_have_text(f"{len(image_bytes(size=(300, 200)))} bytes, 300 × 200")
    expect(watcher.locator(".empty")).to_have_count(0)
    expect(uploader.locator("a.original img")).to_have_count(1)  # its own page lists it once

    # A deletion made by hand (a tool, an operator) leaves both pages.
    with MongoClient(mongodb_uri) as client:
        client[db_name].uploads.delete_one({"filename": "live.png"})
    for page in pages:
        expect(page.locator(".gallery li")).to_have_count(0)
        expect(page.locator(".empty")).to_be_visible()
        assert page.evaluate("window.notReloaded") is True
    for page in pages:
        page.context.close()


@pytest.mark.runs_on("part5_live")
def test_a_page_whose_server_went_away_reconnects_and_catches_up(browser, program, mongodb_uri, db_name):
    """The server stops (its sockets closed with 1001) and comes back on the same port:
    the page's script reconnects on its own, and shows what was uploaded meanwhile."""
    first = program()
    page = browser.new_context(base_url=first.url).new_page()
    page.goto("/")
    page.evaluate("window.notReloaded = true")
    first.stop()
    other = program()  # another process, on another port: where the upload goes meanwhile
    page_elsewhere = browser.new_context(base_url=other.url).new_page()
    page_elsewhere.goto("/")
    page_elsewhere.set_input_files("input[name=file]", files=[{"name": "meanwhile.png", "mimeType": "image/png",
                                                               "buffer": image_bytes(size=(300, 200))}])
    page_elsewhere.get_by_role("button", name="Upload").click()
    expect(page_elsewhere.locator("a.original img")).to_have_count(1)
    program(port=int(first.url.rsplit(":", 1)[1]))  # back where the page's socket was
    expect(page.locator("a.original img")).to_have_attribute("alt", "meanwhile.png", timeout=30_000)
    assert page.evaluate("window.notReloaded") is True
    for each in (page, page_elsewhere):
        each.context.close()
