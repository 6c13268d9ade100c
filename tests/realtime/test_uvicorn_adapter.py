"""uvicorn forgets an accepted socket's handshake (realtime.uvicorn_adapter), through a real
uvicorn server on a loopback port and a real client."""

import asyncio
import socket

import pytest
import uvicorn
import websockets

from realtime.uvicorn_adapter import release_handshake


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def serve():
    servers = []

    async def start(app):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=free_port(), ws="websockets-sansio", log_level="warning"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        servers.append((server, task))
        return f"ws://127.0.0.1:{config.port}/ws"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def test_the_handshake_is_released_and_the_socket_goes_on(serve):
    seen = {}

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        release_handshake(send)  # before the accept: nothing to release yet
        seen["before accept"] = send.__self__.request is not None
        await send({"type": "websocket.accept"})
        release_handshake(send)
        seen["after accept"] = (send.__self__.request, send.__self__.response)
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await receive()  # the close

    url = await serve(app)
    async with websockets.connect(url) as client:
        await client.send("hello")
        assert await client.recv() == "echo hello"
    assert seen == {"before accept": True, "after accept": (None, None)}


def test_another_servers_send_is_left_alone():
    class Protocol:
        request = response = "kept"
        handshake_complete = True

        async def send(self, message):
            pass

    protocol = Protocol()
    release_handshake(protocol.send)
    assert protocol.request == protocol.response == "kept"
