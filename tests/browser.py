"""Real headless Chromium for the browser tests (Debian ``chromium``, driven by Playwright).

Playwright's own browser download is not used: the tests launch the system Chromium
(``/usr/bin/chromium`` or ``$FERKIT_CHROMIUM``). Without it the browser tests skip with
the reason, unless ``FERKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that into a
failure, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

# Flags from the machine notes: without the background-networking ones Chromium keeps
# trying to reach Google's hosts through a closed network.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_path() -> str:
    """Path of the system Chromium; skips (or fails under FERKIT_REQUIRE_BROWSER=1)."""
    path = os.environ.get("FERKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path, why = None, "the playwright package is not installed (pip install -e '.[test]')"
    else:
        why = "Debian chromium is not installed (apt-get install chromium chromium-driver)"
    if not path:
        if os.environ.get("FERKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (FERKIT_REQUIRE_BROWSER=1) but {why}")
        pytest.skip(why)
    return path


@contextlib.contextmanager
def chromium(extra_args=()):
    """A headless Chromium browser (Playwright ``Browser``) with ``extra_args`` added.

    Example: ``with chromium(["--use-fake-device-for-media-stream"]) as browser: ...``
    """
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True,
                                     args=[*CHROMIUM_FLAGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, **context_options):
    """Open ``url`` in a new page; returns ``(page, console_errors)``.

    ``console_errors`` is a live list of the page's console errors and uncaught
    exceptions (strings), for tests that require a clean console.
    """
    context = browser.new_context(**context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page, errors
