"""The API answers JSON with an `error_code` whatever goes wrong: unknown paths, bodies
over Django's limits, unexpected exceptions; and an unknown socket path is refused
cleanly."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

pytestmark = pytest.mark.django_db


def assert_json_error(response, status, error_code):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error_code"] == error_code


@pytest.mark.parametrize("path", ["/api/no-such-thing/", "/api/alerts/1/nope/", "/api/x"])
def test_an_unknown_api_path_is_a_json_404(api_client, alice, path):
    api_client.force_authenticate(alice)
    assert_json_error(api_client.get(path), 404, "NOT_FOUND")
    assert_json_error(api_client.post(path, {}, format="json"), 404, "NOT_FOUND")


def test_a_missing_trailing_slash_is_still_redirected(api_client, alice):
    api_client.force_authenticate(alice)
    response = api_client.get("/api/alerts?page=2")
    assert response.status_code == 301
    assert response["Location"] == "/api/alerts/?page=2"


def test_pages_outside_the_api_keep_html_errors(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_an_oversize_zone_import_is_a_json_413_and_imports_nothing(api_client, carol, settings):
    from dns.models import Zone

    api_client.force_authenticate(carol)
    zone_file = "$TTL 3600\n" + "".join(f"h{i} IN A 192.0.2.1\n" for i in range(150_000))
    assert len(zone_file) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = {"name": "big.example", "email": "h@example.com", "zone_file": zone_file}
    response = api_client.post("/api/dns/zones/import/", body, format="json")
    assert_json_error(response, 413, "REQUEST_TOO_LARGE")
    assert response.json()["max_bytes"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    multipart = api_client.post("/api/dns/zones/import/", body, format="multipart")
    assert_json_error(multipart, 413, "REQUEST_TOO_LARGE")
    assert not Zone.objects.filter(name="big.example").exists()


def test_an_unexpected_exception_is_a_json_500_without_details(
    alice, token_for, monkeypatch, caplog
):
    from incidents import services

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "ingest_alert", broken)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/alerts/",
        json.dumps({"title": "t", "severity": "low", "source": "s"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}",
    )
    assert_json_error(response, 500, "INTERNAL_ERROR")
    assert b"secret internals" not in response.content
    assert "secret internals" in caplog.text  # the operator still gets the traceback


async def test_a_socket_to_an_unknown_path_is_refused_without_an_error(caplog):
    from threatlens.asgi import application

    communicator = WebsocketCommunicator(application, "/not-a-socket/here")
    connected, _code = await communicator.connect()
    assert not connected
    assert "Traceback" not in caplog.text and "No route found" not in caplog.text
    await communicator.disconnect()


@pytest.mark.parametrize("path", ["/api/alerts/", "/api/dns/zones/", "/api/logs/"])
def test_json_nested_too_deep_is_a_400_everywhere(api_client, carol, path):
    """Python's JSON parser raises RecursionError on it; DRF let it through as a 500."""
    api_client.force_authenticate(carol)
    body = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api_client.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error_code"]
