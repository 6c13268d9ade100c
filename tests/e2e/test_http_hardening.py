"""The embedded default as `make run` serves it: no debug pages, yet it still answers
on loopback and on the HOST it was given."""

import http.client

import pytest

from tests.e2e.live_server import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)


def get(server, path, host):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@pytest.fixture
def embedded_server(transactional_db):
    """uvicorn on the embedded default, with DEBUG and ALLOWED_HOSTS unset, told (as
    `HOST=192.0.2.10 make run` does) which address it serves."""
    server = LiveServer("uvicorn", {"SERVE_HOST": "192.0.2.10"})
    for name in ("DEBUG", "ALLOWED_HOSTS", "THREATLENS_MODE"):
        server.env.pop(name, None)
    server.start()
    yield server
    server.stop()


def test_the_embedded_default_shows_no_debug_page(embedded_server):
    status, body = get(embedded_server, "/no/such/page", "127.0.0.1")
    assert status == 404
    # Django's technical 404 page lists every URL pattern and names the settings.
    assert "URLconf" not in body and "DEBUG = True" not in body
    assert "api/" not in body


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "192.0.2.10"])
def test_the_embedded_default_answers_on_loopback_and_its_host(embedded_server, host):
    status, _body = get(embedded_server, "/realtime/status", f"{host}:{embedded_server.port}")
    assert status == 200


def test_another_host_header_is_refused(embedded_server):
    status, body = get(embedded_server, "/realtime/status", "attacker.example")
    assert status == 400
    assert "ALLOWED_HOSTS" not in body


def test_the_api_docs_load_every_asset_from_the_app_itself(embedded_server):
    """/api/docs/ works without internet: Swagger UI's scripts and styles come from the
    server's own static files (drf-spectacular-sidecar), none from a CDN."""
    import re

    status, page = get(embedded_server, "/api/docs/", "127.0.0.1")
    assert status == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assets += re.findall(r'"(/static/[^"]+)"', page)  # set from the page's script
    assert any("swagger-ui-bundle" in asset for asset in assets), page
    for asset in set(assets):
        assert asset.startswith("/"), f"{asset} is not served by the app"
        asset_status, body = get(embedded_server, asset, "127.0.0.1")
        assert asset_status == 200 and body, asset
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
