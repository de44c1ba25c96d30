"""Make the README's screenshots, docs/images/<stage>.png: each stage run as a learner
runs it, a few files uploaded through its form in headless Chromium, the home page
photographed.

    .venv/bin/python tools/screenshots.py               # every stage
    .venv/bin/python tools/screenshots.py part3_streaming

It uses $MONGODB_URI, or starts the embedded database in a temporary folder, and
the Chromium the browser tests use (coursekit/browser.py). Each stage gets a
database of its own, dropped at the end. The tests check that every stage has its
screenshot; they never make them: run this after changing what a stage shows."""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from coursekit.browser import CHROMIUM_ARGS, find_chromium
from coursekit.database import database_of_its_own, scratch_db
from coursekit.images import image_bytes, photo_jpeg
from coursekit.processes import StageProgram
from coursekit.stages import ROOT, STAGES

IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 960, "height": 360}


def uploads(stage):
    """(file name, MIME type, bytes) to upload to `stage`, oldest first: photos, and
    from part 3 on, which keeps any file, a PDF and a video too."""
    files = [("harbour.jpg", "image/jpeg", photo_jpeg(0.4)),
             ("teal.png", "image/png", image_bytes(size=(300, 200), color="teal")),
             ("dunes.jpg", "image/jpeg", photo_jpeg(0.3, detail="smooth"))]
    if stage >= "part3":
        files[1:1] = [("notes.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(40_000)),
                      ("holiday.mp4", "video/mp4", bytes(2_500_000))]
    return files


def screenshot(browser, stage, mongodb_uri):
    """Run `stage`, upload its files through the form, photograph the home page."""
    with database_of_its_own(mongodb_uri, prefix="screenshots") as db_name, \
            StageProgram(stage, mongodb_uri, db_name, log=tempfile.TemporaryFile("w+")) as program:
        page = browser.new_page(base_url=program.url, viewport=VIEWPORT)
        page.goto("/")
        for name, mime_type, data in uploads(stage):
            page.set_input_files("input[name=file]", files=[{"name": name, "mimeType": mime_type, "buffer": data}])
            if page.locator("progress").count():  # part 3's script: the page stays, with a progress bar
                page.get_by_role("button", name="Upload").click()
                expect(page.locator(".status")).to_contain_text(f"Uploaded {name}")
            else:
                with page.expect_navigation():  # to the home page again, once stored
                    page.get_by_role("button", name="Upload").click()
        page.wait_for_function("[...document.images].every(img => img.complete && img.naturalWidth > 0)")
        path = IMAGES / f"{stage}.png"
        page.screenshot(path=path)
        page.close()
        print(f"{path.relative_to(ROOT)}: {stage}'s home page, {len(uploads(stage))} uploads", flush=True)


def main(stages):
    IMAGES.mkdir(parents=True, exist_ok=True)
    with scratch_db() as mongodb_uri, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            for stage in stages or STAGES:
                screenshot(browser, stage, mongodb_uri)
        finally:
            browser.close()


if __name__ == "__main__":
    unknown = [stage for stage in sys.argv[1:] if stage not in STAGES]
    sys.exit(f"error: no stage {unknown[0]} (stages: {', '.join(STAGES)})" if unknown else main(sys.argv[1:]))
