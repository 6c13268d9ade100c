"""End-to-end UI tests: the real server (tests/e2e's LiveServer) and the system Chromium,
driven by Playwright. Nothing is downloaded at test time.

Without Chromium or the playwright package the browser tests skip with one line, except
under CI=true, where that is a failure. Screenshots go to test-artifacts/ui/.

Django's ORM refuses to run while Playwright's sync API is active in the thread, so every
row a test needs is written by fixtures that run before the browser starts (`personas`),
and the tests themselves act through the browser and the REST API only.
"""

import os

import pytest
from django.test import Client

from tests.e2e.live_server import LiveServer
from tests.personas import PASSWORD
from tests.ui.helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    UI,
    browser_problem,
    server_password,
)


def pytest_report_header(config):
    problem = browser_problem()
    return f"ui browser tests: {'SKIPPED: ' + problem if problem else f'Chromium {CHROMIUM}'}"


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
        user.password = server_password(PASSWORD)
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = call.excinfo is not None  # an expected failure too
    return report


@pytest.fixture
def ui(request, ui_server, personas, browser):
    handle = UI(ui_server, personas, browser)
    yield handle
    if getattr(request.node, "call_failed", False):
        handle.write_traces(request.node.name)
    for page in handle.pages:
        if not page.is_closed():
            page.context.close()
