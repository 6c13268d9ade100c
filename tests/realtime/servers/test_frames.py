"""Event frames built once and written straight to the socket (realtime.servers)."""

import functools

import pytest
from websockets.frames import Frame, Opcode

from realtime import servers
from realtime.servers.daphne import DaphneAccess
from realtime.servers.uvicorn import UvicornAccess


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_frame_bytes_are_the_servers_text_frame_for_every_length_encoding(length):
    text = "é" * (length // 2) + "x" * (length % 2)  # multi-byte UTF-8 counts in bytes
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert servers.frame_bytes(text) == expected


def test_frame_bytes_are_built_once_for_the_text_asked_for_again():
    text = '{"type":"event"}'
    assert servers.frame_bytes(text) is servers.frame_bytes(text)


def test_a_send_of_an_unknown_server_goes_through_asgi():
    async def send(message):
        pass

    class Protocol:
        async def send(self, message):
            pass

    assert servers.access_for(send) is servers.PLAIN
    assert servers.access_for(Protocol().send) is servers.PLAIN
    assert servers.access_for(functools.partial(send, object())) is servers.PLAIN
    assert not servers.PLAIN.write_frame("text")
    assert not servers.PLAIN.abort()
    assert servers.PLAIN.buffered() is None


def test_uvicorn_and_daphne_sends_are_recognised():
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.testing import StringTransport
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.server import ServerProtocol

    uvicorn_protocol = WebSocketsSansIOProtocol.__new__(WebSocketsSansIOProtocol)
    uvicorn_protocol.conn = ServerProtocol()
    access = servers.access_for(uvicorn_protocol.send)
    assert type(access) is UvicornAccess
    assert access.protocol is uvicorn_protocol

    factory = WebSocketServerFactory()
    factory.protocol = WebSocketProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0)
    daphne_protocol = factory.buildProtocol(None)
    daphne_protocol.makeConnection(StringTransport())  # as Twisted connects it
    server = Server.__new__(Server)
    access = servers.access_for(functools.partial(server.handle_reply, daphne_protocol))
    assert type(access) is DaphneAccess
    assert access.protocol is daphne_protocol
