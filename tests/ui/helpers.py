"""UI test helpers: where Chromium is and why it cannot run, the browser settings, a
test's handle on the server, personas and browser (`UI`), and screenshots."""

import os
import re
import time
from pathlib import Path

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils.crypto import get_random_string

from tests.e2e.live_server import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
LAPTOP = {"width": 1280, "height": 800}
TIMEZONE = "Europe/Paris"  # the browsers' zone: times must show in it, not the server's UTC
PHONE = {"width": 390, "height": 844}


def browser_problem():
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def server_password(raw):
    # The tests hash passwords with MD5 (fast), which the server does not accept; a cheap
    # PBKDF2 hash is verified by the server's default hashers.
    return PBKDF2PasswordHasher().encode(raw, get_random_string(12), iterations=1000)


class UI:
    """A test's handle on the server, the personas and the browser."""

    def __init__(self, server, personas, browser):
        self.server = server
        self.personas = personas
        self.browser = browser
        self.pages = []

    def api(self, method, path, body=None, *, as_user="carol"):
        status, data = self.server.request(method, path, body, self.personas[as_user]["token"])
        return status, data

    def context(self, viewport=LAPTOP, username=None):
        context = self.browser.new_context(
            base_url=self.server.url, viewport=viewport, locale="en-GB", timezone_id=TIMEZONE
        )
        context.set_default_timeout(15000)
        if username:
            context.add_cookies(
                [
                    {
                        "name": "sessionid",
                        "value": self.personas[username]["session"],
                        "url": self.server.url,
                    }
                ]
            )
        return context

    def open(self, username, path, *, viewport=LAPTOP, before_goto=None):
        """A logged-in page at `path`; JavaScript errors are collected in `page.js_errors`."""
        page = self.context(viewport, username).new_page()
        self.watch(page)
        if before_goto:
            before_goto(page)
        page.goto(path)
        return page

    def watch(self, page):
        page.js_errors = []
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        page.trace = Trace(page)
        self.pages.append(page)
        return page

    def js_errors(self):
        return {page.url: page.js_errors for page in self.pages if page.js_errors}

    def write_traces(self, name):
        """After a failed test: each page's trace in test-artifacts/ui/<name>-trace.txt."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}-trace.txt"
        with path.open("w") as out:
            for page in self.pages:
                out.write(f"=== page {page.url}\n")
                out.writelines(f"{line}\n" for line in page.trace.lines)
            out.write("=== server log (tail)\n" + self.server.log_text()[-20000:])
        return path


class Trace:
    """What a page did, for the failure of a test that is not seen again alone: its API
    requests and their statuses, its socket frames (shortened) and console messages."""

    FRAME = 240  # characters kept of a frame

    def __init__(self, page):
        self.lines = []
        page.on("console", lambda message: self.add("console", message.text))
        page.on("response", self.response)
        page.on("websocket", self.websocket)

    def add(self, kind, text):
        self.lines.append(f"{time.monotonic():.3f} {kind} {text[: self.FRAME]}")

    def response(self, response):
        if "/api/" in response.url:
            self.add("http", f"{response.status} {response.request.method} {response.url}")

    def websocket(self, ws):
        self.add("ws-open", ws.url)
        ws.on("framereceived", lambda frame: self.add("ws-in", str(frame)))
        ws.on("framesent", lambda frame: self.add("ws-out", str(frame)))
        ws.on("close", lambda _ws: self.add("ws-close", ws.url))


def screenshot(page, name):
    """Save the whole page as test-artifacts/ui/<name>-<width>.png."""
    width = page.viewport_size["width"]
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
