"""daphne's writes go out at once when nothing is buffered before them (realtime.servers.daphne).

The transport here is Twisted's own TCP connection on one end of a socket pair, so the
buffering, the producer checks and the send limit are Twisted's. Real daphne servers are
exercised in tests/e2e (large frames, close codes)."""

import socket

import pytest
from twisted.internet import tcp

from realtime.servers import daphne
from realtime.servers.daphne import write_through


class _Protocol:
    def makeConnection(self, transport):
        pass

    def connectionLost(self, reason):
        pass


class _Reactor:
    """Records what Twisted asks of a reactor: registering the socket for writability."""

    def __init__(self):
        self.writers = set()

    def addWriter(self, writer):
        self.writers.add(writer)

    def removeWriter(self, writer):
        self.writers.discard(writer)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    reactor = _Reactor()
    transport = tcp.Connection(ours, _Protocol(), reactor=reactor)
    transport.connected = True
    yield transport, theirs, reactor
    ours.close()
    theirs.close()


def received(sock, size):
    sock.settimeout(2)
    chunks = []
    while size:
        chunk = sock.recv(size)
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def test_an_idle_transport_sends_at_once_without_registering(pair):
    transport, theirs, reactor = pair
    assert write_through(transport, b"frame-1")
    assert write_through(transport, b"frame-2")
    assert received(theirs, 14) == b"frame-1frame-2"
    assert not reactor.writers


def test_what_the_socket_does_not_take_is_buffered_in_order(pair):
    transport, theirs, reactor = pair
    big = bytes(range(256)) * (transport.SEND_LIMIT // 256 + 100)  # over Twisted's send limit
    assert write_through(transport, big)
    assert reactor.writers == {transport}  # the rest waits for writability
    assert not write_through(transport, b"after")  # it must queue behind the rest
    transport.write(b"after")
    seen = received(theirs, transport.SEND_LIMIT)
    while len(seen) < len(big) + 5:
        transport.doWrite()
        seen += received(theirs, len(big) + 5 - len(seen))
    assert seen == big + b"after"
    assert not reactor.writers


@pytest.mark.parametrize(
    "state",
    [
        {"TLS": True},
        {"disconnecting": True},
        {"connected": False},
        {"_writeDisconnected": True},
        {"producerPaused": True},
        {"producer": object(), "streamingProducer": False},
    ],
)
def test_unusual_transports_keep_twisteds_path(pair, state):
    transport, theirs, reactor = pair
    for name, value in state.items():
        setattr(transport, name, value)
    assert not write_through(transport, b"frame")
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(10)


def test_a_streaming_producer_does_not_stop_it(pair):
    transport, theirs, reactor = pair
    transport.producer, transport.streamingProducer = object(), True
    assert write_through(transport, b"frame")
    assert received(theirs, 5) == b"frame"


def test_a_lost_connection_is_left_to_twisted(pair):
    transport, theirs, reactor = pair
    theirs.close()
    assert not write_through(transport, b"frame")  # Twisted's write path notices and closes


def test_protocol_options_are_read_from_the_factory_not_copied():
    from autobahn.twisted.websocket import WebSocketServerFactory
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet.testing import StringTransport

    daphne.install()
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketProtocol
    factory.setProtocolOptions(autoPingInterval=7, openHandshakeTimeout=3)
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())  # where autobahn copies what is missing
    if protocol.openHandshakeTimeoutCall is not None:
        protocol.openHandshakeTimeoutCall.cancel()
    copied = set(WebSocketProtocol.CONFIG_ATTRS) & set(vars(protocol))
    assert copied <= {"trackTimings"}  # autobahn assigns that one itself
    assert (protocol.autoPingInterval, protocol.openHandshakeTimeout) == (7, 3)
    assert protocol.maxFramePayloadSize == factory.maxFramePayloadSize

    protocol.autoPingInterval = 1  # set on one protocol: that protocol's alone
    assert protocol.autoPingInterval == 1
    assert factory.buildProtocol(None).autoPingInterval == 7


# --- falling back -------------------------------------------------------------------------------


def test_a_daphne_socket_whose_protocol_changed_warns_once_and_declines(caplog):
    from realtime import servers
    from realtime.servers.daphne import DaphneAccess

    class RenamedProtocol:  # an autobahn that renamed its send state
        _perMessageCompress = None
        STATE_OPEN = state = 3

    servers.reset()
    first, second = DaphneAccess(RenamedProtocol()), DaphneAccess(RenamedProtocol())
    assert not first.write_frame("one")  # the caller sends it through the ASGI send
    assert not first.write_frame("two")
    assert not second.write_frame("three")
    warnings = [r for r in caplog.records if "daphne_writes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    servers.reset()


def test_a_protocol_without_its_compression_attribute_warns_once_and_declines(caplog):
    from realtime import servers
    from realtime.servers.daphne import DaphneAccess

    class RenamedProtocol:  # an autobahn that renamed _perMessageCompress
        STATE_OPEN = state = 3

    servers.reset()
    first, second = DaphneAccess(RenamedProtocol()), DaphneAccess(RenamedProtocol())
    assert not first.write_frame("one")  # the caller sends it through the ASGI send
    assert not second.write_frame("two")
    warnings = [r for r in caplog.records if "daphne_writes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    servers.reset()


def test_a_broken_write_through_falls_back_to_autobahns_send(pair, monkeypatch, caplog):
    from realtime import servers

    servers.reset()
    transport, theirs, reactor = pair
    sent = []

    class Protocol:  # autobahn's sendData, which the patch wraps
        send_queue = ()

        def sendData(self, data, sync=False, chopsize=None):
            sent.append(data)

    daphne._patch_writes(Protocol)

    def renamed(transport, data):  # as if Twisted renamed a field it reads
        raise AttributeError("'Server' object has no attribute '_tempDataLen'")

    monkeypatch.setattr(daphne, "write_through", renamed)
    protocol = Protocol()
    protocol.transport = transport
    protocol.sendData(b"one")
    protocol.sendData(b"two")
    assert sent == [b"one", b"two"]
    warnings = [r for r in caplog.records if "daphne_write_through" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    servers.reset()
