"""/healthz and the component checks answer honestly: a down channel layer shows as down."""

import pytest

from threatlens import health

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS_LAYER = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Port 1 on loopback: nothing listens there, the connection is refused at once.
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


def test_healthz_answers_200_when_everything_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["components"]) == {"database", "channel_layer", "cache"}
    for component in body["components"].values():
        assert component["status"] == "healthy"
        assert component["latency_ms"] >= 0
        assert "error" not in component
    assert body["timestamp"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_answers_503_when_the_channel_layer_is_down(client, settings):
    settings.CHANNEL_LAYERS = UNREACHABLE_REDIS_LAYER

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    layer = body["components"]["channel_layer"]
    assert layer["status"] == "down"
    assert layer["error"]
    assert body["components"]["database"]["status"] == "healthy"


def test_healthz_needs_no_login_and_shows_no_user_data(client, carol):
    text = client.get("/healthz").content.decode()
    assert "carol" not in text


def test_healthz_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


def test_the_report_is_down_when_the_database_is(monkeypatch):
    down = {"status": "down", "latency_ms": 1, "error": "OperationalError: gone"}
    monkeypatch.setattr(health, "check_database", lambda: down)
    report = health.health_report_sync()
    assert report["status"] == "down"


def test_the_report_is_degraded_when_the_cache_is_down(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(health.cache, "set", broken)
    report = health.health_report_sync()
    assert report["status"] == "degraded"
    assert report["components"]["cache"] == {
        "status": "down",
        "latency_ms": report["components"]["cache"]["latency_ms"],
        "error": "ConnectionError: Connection refused",
    }


async def test_a_channel_layer_that_never_answers_is_down_after_the_timeout(monkeypatch):
    class Silent:
        async def new_channel(self, prefix="specific."):
            return prefix + "x"

        async def send(self, channel, message):
            pass

        async def receive(self, channel):
            import asyncio

            await asyncio.sleep(10)

    monkeypatch.setattr(health, "get_channel_layer", lambda: Silent())
    result = await health.check_channel_layer(timeout=0.05)
    assert result["status"] == "down"
    assert "no answer within 0.05 s" in result["error"]


async def test_the_channel_layer_check_is_a_real_round_trip():
    result = await health.check_channel_layer()
    assert result["status"] == "healthy"


def test_a_missing_channel_layer_is_down(monkeypatch):
    from asgiref.sync import async_to_sync

    monkeypatch.setattr(health, "get_channel_layer", lambda: None)
    assert async_to_sync(health.check_channel_layer)()["status"] == "down"
