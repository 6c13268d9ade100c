"""Fixtures for the pipeline's ingest: uploads, processed inline (line factories and
event readers: tests/ingest/helpers.py). Sockets come from tests/conftest.py (`ws`)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture(autouse=True)
def _inline_processing(settings):
    """Uploads are processed inside the request unless a test says otherwise, and the
    server's in-process monitors and watchers stay off."""
    settings.LOG_PROCESSING = "inline"
    settings.MONITORS_IN_PROCESS = False
    settings.WATCH_LOGS = []


@pytest.fixture
def upload(api_client):
    """upload(user, source=..., content=...) -> the response of POST /api/logs/ (JSON)."""

    def post(user, **body):
        if user is not None:
            api_client.force_authenticate(user)
        return api_client.post("/api/logs/", body, format="json")

    return post


@pytest.fixture
def aupload(upload):
    """`upload` for async tests: in a worker thread whose database connection is closed
    afterwards (left open, it would keep PostgreSQL from dropping the test database)."""

    def post_and_close(user, **body):
        try:
            return upload(user, **body)
        finally:
            connections.close_all()

    return sync_to_async(post_and_close)
