"""uvicorn's fast paths (realtime.servers.uvicorn) through a real uvicorn server on a
loopback port and real clients: what they do, and that a broken one falls back to the
ASGI `send` with one WARNING, the client still getting every frame."""

import asyncio
import json
import logging
import socket

import pytest
import uvicorn
import websockets
from asgiref.sync import sync_to_async

from realtime import servers
from realtime.publishing import publish
from realtime.servers import uvicorn as uvicorn_paths
from tests.waiting import until


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def serve():
    started = []

    async def start(app, log_level="warning"):
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=free_port(),
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            lifespan="off",
            log_level=log_level,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        await until(lambda: server.started, "uvicorn starts serving")
        started.append((server, task))
        return f"ws://127.0.0.1:{config.port}"

    yield start
    for server, task in started:
        server.should_exit = True
        await task


@pytest.fixture(autouse=True)
def _fresh_warnings():
    servers.reset()
    yield
    servers.reset()


async def test_the_handshake_is_released_and_the_socket_goes_on(serve):
    seen = {}

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        request = send.__self__.request
        servers.access_for(send).release_handshake()
        seen["after accept"] = (send.__self__.request, send.__self__.response)
        # websockets' parser still holds the request: nothing in it any more.
        seen["headers left"] = len(request.headers)
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await receive()  # the close

    url = await serve(app)
    async with websockets.connect(url + "/ws") as client:
        await client.send("hello")
        assert await client.recv() == "echo hello"
    assert seen == {"after accept": (None, None), "headers left": 0}


def test_another_servers_send_is_left_alone():
    class Protocol:
        request = response = "kept"
        handshake_complete = True

        async def send(self, message):
            pass

    protocol = Protocol()
    servers.access_for(protocol.send).release_handshake()
    assert protocol.request == protocol.response == "kept"


@pytest.fixture
def records_made():
    """(logger, message) of every log record made meanwhile, masked as in the server."""
    made = []
    factory = logging.getLogRecordFactory()

    def collecting(*args, **kwargs):
        record = factory(*args, **kwargs)
        made.append((record.name, record.getMessage()))
        return record

    logging.setLogRecordFactory(collecting)
    yield made
    logging.setLogRecordFactory(factory)


async def accept_one(serve, log_level):
    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        servers.before_accept(send)
        await send({"type": "websocket.accept"})
        await receive()  # the close

    url = await serve(app, log_level=log_level)
    uvicorn_paths.install()  # as threatlens.asgi, once uvicorn has set its log level
    async with websockets.connect(url + "/ws?token=secret"):
        pass


def socket_lines(made):
    return [(name, text) for name, text in made if "WebSocket" in text or "connection " in text]


async def test_below_debug_no_line_per_socket_is_even_made(serve, records_made):
    await accept_one(serve, "info")
    assert socket_lines(records_made) == []


async def test_at_debug_the_lines_per_socket_are_made_masked(serve, records_made):
    await accept_one(serve, "debug")
    lines = socket_lines(records_made)
    assert ("uvicorn.error.sockets", "connection open") in lines
    (accepted,) = [text for _, text in lines if "[accepted]" in text]
    assert "/ws?token=[redacted]" in accepted


async def test_a_socket_line_path_that_breaks_warns_once_and_the_socket_is_accepted(
    serve, monkeypatch, records_made, warnings_of_servers
):
    def renamed(send):  # what a uvicorn release without `conn` would do
        raise AttributeError("'WebSocketsSansIOProtocol' object has no attribute 'conn'")

    monkeypatch.setattr(uvicorn_paths, "quiet_socket_lines", renamed)
    await accept_one(serve, "info")
    await accept_one(serve, "info")
    assert len(fast_path_warnings(warnings_of_servers, "uvicorn_socket_log")) == 1
    # Made, then left out by threatlens.serverlog.
    assert ("uvicorn.error", "connection open") in socket_lines(records_made)


# --- the whole server ---------------------------------------------------------------------------

apublish = sync_to_async(publish)


async def hub_client(url, user, token_for):
    client = await websockets.connect(f"{url}/ws?token={token_for(user)}")
    assert json.loads(await client.recv())["type"] == "connection_established"
    return client


async def received_events(client, count):
    seen = []
    async with asyncio.timeout(5):
        while len(seen) < count:
            frame = json.loads(await client.recv())
            if frame["type"] == "security_event":
                seen.append(frame["data"]["n"])
    return seen


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def warnings_of_servers():
    """WARNINGs of realtime.servers (a handler of its own: the server reconfigures logging)."""
    handler = Records()
    logger = logging.getLogger("realtime.servers")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def fast_path_warnings(records, name):
    return [r for r in records if r.levelno == logging.WARNING and name in r.getMessage()]


@pytest.mark.django_db(transaction=True)
async def test_a_fast_path_that_breaks_warns_once_and_the_socket_goes_on_through_send(
    serve, alice, token_for, monkeypatch, warnings_of_servers
):
    from threatlens.asgi import application

    def renamed():  # what a websockets release that renamed State would do
        raise AttributeError("module 'websockets.protocol' has no attribute 'State'")

    monkeypatch.setattr(uvicorn_paths, "_open_state", renamed)
    url = await serve(application)
    first = await hub_client(url, alice, token_for)
    second = await hub_client(url, alice, token_for)
    try:
        for n in range(3):
            await apublish("security_event", {"n": n, "severity": 5})
        assert await received_events(first, 3) == [0, 1, 2]
        assert await received_events(second, 3) == [0, 1, 2]
    finally:
        await first.close()
        await second.close()
    assert len(fast_path_warnings(warnings_of_servers, "uvicorn_writes")) == 1


@pytest.mark.django_db(transaction=True)
async def test_events_are_written_by_the_fast_path_when_it_works(
    serve, alice, token_for, monkeypatch, warnings_of_servers
):
    from threatlens.asgi import application

    written = []
    write = uvicorn_paths.UvicornAccess._write_frame

    def counted(self, data):
        result = write(self, data)
        written.append(result)
        return result

    monkeypatch.setattr(uvicorn_paths.UvicornAccess, "_write_frame", counted)
    url = await serve(application)
    client = await hub_client(url, alice, token_for)
    try:
        await apublish("security_event", {"n": 1, "severity": 5})
        assert await received_events(client, 1) == [1]
    finally:
        await client.close()
    assert written == [True]
    assert not fast_path_warnings(warnings_of_servers, "")


@pytest.mark.django_db(transaction=True)
async def test_with_every_fast_path_off_events_go_through_send(
    serve, alice, token_for, monkeypatch, settings
):
    from threatlens.asgi import application

    settings.REALTIME_FAST_PATHS = ["none"]
    monkeypatch.setattr(uvicorn_paths.UvicornAccess, "_write_frame", None)  # never called
    url = await serve(application)
    client = await hub_client(url, alice, token_for)
    try:
        await apublish("security_event", {"n": 1, "severity": 5})
        assert await received_events(client, 1) == [1]
    finally:
        await client.close()
