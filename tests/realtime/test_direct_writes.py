"""Event frames built once and written straight to the socket (realtime.direct_writes)."""

import functools

import pytest
from websockets.frames import Frame, Opcode

from realtime import direct_writes


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 300_000])
def test_frame_bytes_are_the_servers_text_frame_for_every_length_encoding(length):
    text = "é" * (length // 2) + "x" * (length % 2)  # multi-byte UTF-8 counts in bytes
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert direct_writes.frame_bytes(text) == expected


def test_frame_bytes_are_built_once_for_the_text_asked_for_again():
    text = '{"type":"event"}'
    assert direct_writes.frame_bytes(text) is direct_writes.frame_bytes(text)


def test_a_send_of_an_unknown_server_goes_through_asgi():
    async def send(message):
        pass

    class Protocol:
        async def send(self, message):
            pass

    assert direct_writes.target_for(send) is None
    assert direct_writes.target_for(Protocol().send) is None
    assert direct_writes.target_for(functools.partial(send, object())) is None


def test_uvicorn_and_daphne_sends_are_recognised():
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    uvicorn_protocol = WebSocketsSansIOProtocol.__new__(WebSocketsSansIOProtocol)
    writer, target = direct_writes.target_for(uvicorn_protocol.send)
    assert target is uvicorn_protocol

    daphne_protocol = WebSocketProtocol.__new__(WebSocketProtocol)
    server = Server.__new__(Server)
    writer, target = direct_writes.target_for(
        functools.partial(server.handle_reply, daphne_protocol)
    )
    assert target is daphne_protocol
