"""The Chromium that the browser tests drive, and how they start it."""

import os
import shutil
from pathlib import Path

# Headless, as root in a container, and quiet: without the networking flags, Chromium
# keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium():
    """A Chromium for the browser tests: $CHROMIUM, or the system's; None if neither
    (Playwright then uses its own, if it has downloaded one)."""
    candidates = [os.environ.get("CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None
