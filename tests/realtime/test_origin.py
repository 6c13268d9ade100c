"""The Origin of a cookie-authenticated socket is compared as a whole (scheme, host, port)."""

import pytest

from tests.realtime.test_connect import session_cookie
from tests.sockets import in_thread

pytestmark = pytest.mark.django_db(transaction=True)
ALLOWED, REFUSED = True, False


@pytest.mark.parametrize(
    "scheme, host, origin, expected",
    [
        ("ws", "localhost:8000", "http://localhost:8000", ALLOWED),
        ("wss", "localhost", "https://localhost", ALLOWED),
        ("ws", "localhost:8000", "http://localhost:1337", REFUSED),  # another port
        ("ws", "localhost:8000", "https://localhost:8000", REFUSED),  # another scheme
        ("wss", "127.0.0.1", "http://127.0.0.1", REFUSED),
        ("ws", "127.0.0.1:8000", "https://127.0.0.1", REFUSED),
        ("ws", "[::1]:8000", "http://[::1]:9", REFUSED),
        ("ws", "localhost:8000", "http://127.0.0.1:8000", REFUSED),  # another host
        ("ws", "evil.example", "http://evil.example", REFUSED),  # not an allowed host
        ("ws", "localhost:8000", "null", REFUSED),
        ("ws", "localhost:8000", "https://console.example.com", ALLOWED),  # trusted
        ("ws", "localhost:8000", "https://a.partner.example", ALLOWED),  # *.partner.example
        ("ws", "localhost:8000", "http://a.partner.example", REFUSED),
    ],
)
async def test_origin_must_be_the_sockets_own_or_trusted(
    ws, alice, settings, scheme, host, origin, expected
):
    settings.REALTIME = {**settings.REALTIME, "ALLOWED_ORIGINS": ["https://console.example.com"]}
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.partner.example"]
    headers = [
        (b"cookie", f"sessionid={await in_thread(session_cookie, alice)}".encode()),
        (b"host", host.encode()),
        (b"origin", origin.encode()),
    ]
    client = await ws("/ws", headers=headers, connect=False)
    client.communicator.scope["scheme"] = scheme
    await client.connect()
    if expected:
        assert (await client.receive())["type"] == "connection_established"
    else:
        error, code = await client.receive_close()
        assert (error["error_code"], code) == ("PERMISSION_DENIED", 1008)
