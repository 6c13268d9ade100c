"""Real servers, real sockets: every socket ends clean, no secret in the server's log."""

import asyncio
import contextlib
import json

import pytest
import websockets

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


async def established(server, token, path="/ws"):
    socket = await websockets.connect(f"{server.ws_url}{path}?token={token}")
    greeting = json.loads(await socket.recv())
    assert greeting["type"] == "connection_established", greeting
    return socket


async def next_of(socket, kind, timeout=5):
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == kind:
                return frame


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_a_lone_surrogate_id_gets_an_error_and_leaks_no_slot(
    running_server, alice, token_for, kind
):
    server = running_server(kind, REALTIME_MAX_CONNECTIONS_PER_USER="2")
    token = token_for(alice)
    for _ in range(4):  # twice the limit: a leaked slot would refuse the later ones
        socket = await established(server, token)
        await socket.send('{"type":"ping","id":"\\ud800"}')
        error = await next_of(socket, "error")
        assert error["error_code"] == "INVALID_MESSAGE"
        # The socket lives on: the next request is answered.
        await socket.send('{"type":"ping","id":"after"}')
        assert (await next_of(socket, "pong"))["id"] == "after"
        await socket.close()
    last = await established(server, token)
    await last.close()


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_clients_that_drop_their_connection_mid_request_leak_no_slot(
    running_server, alice, token_for, kind
):
    server = running_server(kind, REALTIME_MAX_CONNECTIONS_PER_USER="2")
    token = token_for(alice)
    for _ in range(6):
        socket = await established(server, token)
        for number in range(50):
            await socket.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "id": number,
                        "data": {"event_types": ["security_event", "nope"]},
                    }
                )
            )
        socket.transport.abort()  # a killed tab: no close frame, the TCP connection reset
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    last = await established(server, token)
    await last.close()


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_no_token_reaches_the_server_log(transactional_db, alice, token_for, kind):
    """The most talkative log of each server (access log, debug) over a session: sockets
    with the token in the query, refused tokens, a token in an HTTP query string."""
    import urllib.request

    server = LiveServer(kind, {"LOG_LEVEL": "DEBUG"}, verbose=True).start()
    try:
        token = token_for(alice)
        socket = await established(server, token)
        await socket.send(json.dumps({"type": "ping", "id": 1}))
        await next_of(socket, "pong")
        await socket.close()
        refused = f"{token[:-4]}AAAA"  # a bad signature, otherwise a real token
        async with websockets.connect(f"{server.ws_url}/ws?token={refused}") as bad:
            assert json.loads(await bad.recv())["error_code"] == "AUTH_FAILED"
        with contextlib.suppress(OSError):
            await asyncio.to_thread(
                urllib.request.urlopen, f"{server.url}/api/alerts/?token={token}", timeout=5
            )
        await asyncio.sleep(0.5)
        log = server.log_text()
    finally:
        server.stop()
    assert "token=[redacted]" in log  # the server did log the requests, masked
    for secret in (token, refused, token.split(".")[1], token.split(".")[2]):
        assert secret not in log
