"""End-to-end UI tests: the real server (tests/e2e's LiveServer) and the system Chromium,
driven by Playwright. Nothing is downloaded at test time.

Without Chromium or the playwright package the browser tests skip with one line, except
under CI=true, where that is a failure. Screenshots go to test-artifacts/ui/.

Django's ORM refuses to run while Playwright's sync API is active in the thread, so every
row a test needs is written by fixtures that run before the browser starts (`personas`),
and the tests themselves act through the browser and the REST API only.
"""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.test import Client
from django.utils.crypto import get_random_string

from tests.conftest import PASSWORD
from tests.e2e.conftest import ROOT, LiveServer

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


def pytest_report_header(config):
    problem = browser_problem()
    return f"ui browser tests: {'SKIPPED: ' + problem if problem else f'Chromium {CHROMIUM}'}"


def _server_password(raw):
    # The tests hash passwords with MD5 (fast), which the server does not accept; a cheap
    # PBKDF2 hash is verified by the server's default hashers.
    return PBKDF2PasswordHasher().encode(raw, get_random_string(12), iterations=1000)


@pytest.fixture
def personas(transactional_db, make_user, token_for):
    """alice and dave (analysts), bob (viewer), carol (admin): users, tokens and sessions,
    written before any browser starts."""
    names = {
        "alice": ("analyst", "Alice", "Archer"),
        "dave": ("analyst", "Dave", "Dunn"),
        "bob": ("viewer", "Bob", "Baker"),
        "carol": ("admin", "Carol", "Chen"),
    }
    people = {}
    for username, (role, first, last) in names.items():
        user = make_user(username, role=role, first_name=first, last_name=last)
        user.password = _server_password(PASSWORD)
        user.save(update_fields=["password"])
        client = Client()
        client.force_login(user)
        people[username] = {
            "user": user,
            "token": token_for(user),
            "session": client.cookies["sessionid"].value,
            "display": f"{first} {last}",
        }
    return people


@pytest.fixture(scope="module")
def ui_server(django_db_setup):
    """One server for a module's tests (starting one takes seconds). Tests write through
    `transactional_db`, so the server sees their rows, and each test's users are new."""
    server = LiveServer("daphne").start()
    yield server
    server.stop()


@pytest.fixture
def browser(ui_server, personas):
    problem = browser_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"UI browser tests cannot run and CI=true: {problem}", pytrace=False)
        pytest.skip(f"UI browser tests: {problem}")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


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
        self.pages.append(page)
        return page

    def js_errors(self):
        return {page.url: page.js_errors for page in self.pages if page.js_errors}


@pytest.fixture
def ui(ui_server, personas, browser):
    handle = UI(ui_server, personas, browser)
    yield handle
    for page in handle.pages:
        if not page.is_closed():
            page.context.close()


def screenshot(page, name):
    """Save the whole page as test-artifacts/ui/<name>-<width>.png."""
    width = page.viewport_size["width"]
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
