"""RELP: the frame decoder, and real sessions with a RELP sender over loopback."""

import asyncio
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidents.syslog.relp import RelpDecoder, RelpFrame, RelpProtocolError
from tests.syslog.certificates import make_certificates
from tests.syslog.helpers import RecordingSink, eventually
from tests.syslog.relp_client import RelpClient


def message(n):
    return b"<38>1 2025-03-10T14:02:11.%06dZ web01 sshd 811 - - Failed password for root" % n


# -- frames -------------------------------------------------------------------------------------


def test_frames_with_and_without_data():
    frames = RelpDecoder(1024).feed(b"1 open 14 relp_version=0\n2 syslog 3 abc\n3 close 0\n")
    assert frames == [
        RelpFrame(1, "open", b"relp_version=0"),
        RelpFrame(2, "syslog", b"abc"),
        RelpFrame(3, "close", b""),
    ]


def test_data_may_hold_lf_and_is_taken_by_its_length():
    assert RelpDecoder(64).feed(b"7 syslog 5 a\nb\nc\n") == [RelpFrame(7, "syslog", b"a\nb\nc")]


def test_data_over_the_limit_is_skipped_and_the_next_frame_read():
    decoder = RelpDecoder(8)
    assert decoder.feed(b"1 syslog 20 0123456789") == [RelpFrame(1, "syslog", None)]
    assert decoder.feed(b"0123456789\n2 syslog 2 ok\n") == [RelpFrame(2, "syslog", b"ok")]


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"1 syslog 3 abcd\n",  # no LF where the data should end
        b"1 close 5\n",  # a length but no data
        b"1234567890 syslog 1 a\n",  # a TXNR of ten digits
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 60,  # a TLS hello
    ],
)
def test_what_is_not_relp_ends_the_session(garbage):
    with pytest.raises(RelpProtocolError):
        RelpDecoder(64).feed(garbage)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=30), min_size=1, max_size=15),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
)
def test_any_split_of_a_session_gives_the_same_frames(payloads, cuts):
    stream = b"".join(
        b"%d syslog %d %s\n" % (n, len(data), data) if data else b"%d syslog 0\n" % n
        for n, data in enumerate(payloads, start=1)
    )
    decoder = RelpDecoder(64)
    frames, position = [], 0
    for cut in sorted(cut % (len(stream) + 1) for cut in cuts) + [len(stream)]:
        frames += decoder.feed(stream[position:cut])
        position = cut
    assert frames == [RelpFrame(n, "syslog", data) for n, data in enumerate(payloads, start=1)]


# -- sessions -----------------------------------------------------------------------------------


class GatedSink(RecordingSink):
    """Stores durably only once `gate` is set."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()

    async def put_durable(self, lines):
        await self.gate.wait()
        await super().put_durable(lines)


class FailingSink(RecordingSink):
    async def put_durable(self, lines):
        raise OSError("disk full")


async def relp_client(receiver, **options):
    host, port = receiver.addresses["relp"]
    return await RelpClient(host, port, **options).connect()


async def test_a_session_opens_sends_within_a_window_and_closes(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver, window=32)
    assert client.offers.startswith(b"200 OK\nrelp_version=0\n")
    assert b"\ncommands=syslog" in client.offers
    for n in range(300):
        await client.send(message(n))
    await client.close()
    assert client.acked == 300
    assert [line.text.encode() for line in sink.durable] == [message(n) for n in range(300)]
    assert {(line.transport, line.source, line.peer) for line in sink.durable} == {
        ("relp", "sshd", "127.0.0.1")
    }
    # After `close` is answered, the server ends the connection.
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_frames_are_answered_only_once_stored(start_receiver):
    sink = GatedSink()
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver)
    await client.send(message(1))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.read_answer(), 0.3)
    assert sink.durable == []
    sink.gate.set()
    await asyncio.wait_for(client.wait_all_answered(), 5)
    assert [line.text.encode() for line in sink.durable] == [message(1)]


async def test_what_the_sink_could_not_store_is_not_answered(start_receiver):
    receiver = await start_receiver(FailingSink(), relp_port=0)
    client = await relp_client(receiver)
    await client.send(message(1))
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await asyncio.wait_for(client.read_answer(), 5)
    assert list(client.unacked) == [2]


async def test_binary_and_oversized_messages_are_answered_counted_and_not_stored(
    start_receiver, sink
):
    receiver = await start_receiver(sink, relp_port=0, max_message_bytes=600)
    client = await relp_client(receiver)
    await client.send(b"<13>\x00\x01\x02 binary")
    await client.send(b"<13>" + b"x" * 2000)
    await client.send(message(3))
    await client.wait_all_answered()
    assert [line.text.encode() for line in sink.durable] == [message(3)]
    assert sink.malformed["relp"] == 2
    await client.close()


async def test_bytes_that_are_not_relp_close_the_session_and_are_counted(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    reader, writer = await asyncio.open_connection(*receiver.addresses["relp"])
    writer.write(b"<13>plain syslog sent to the RELP port\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert receiver.stats()["relp_protocol_errors"] == 1 and sink.lines == []


async def test_a_syslog_frame_before_open_is_refused_and_the_session_closed(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    reader, writer = await asyncio.open_connection(*receiver.addresses["relp"])
    writer.write(b"1 syslog 8 <13>text\n")
    assert await asyncio.wait_for(reader.read(), 5) == b"1 rsp 20 500 session not open\n"
    assert sink.lines == []


async def test_a_client_that_does_not_offer_syslog_is_refused(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    reader, writer = await asyncio.open_connection(*receiver.addresses["relp"])
    writer.write(b"1 open 14 relp_version=0\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"1 rsp ") and b"500 required command not supported" in answer


async def test_a_frame_out_of_sequence_ends_the_session_unanswered(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver)
    client.txnr = 5  # the next frame is 6 where 2 is due
    await client.send(message(1))
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
    assert sink.lines == []


async def test_frames_sent_again_after_a_cut_are_stored_once(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver, window=200)
    # The answers are lost with the connection: stored, but unanswered for the sender.
    for n in range(50):
        await client.send(message(n), read_answers=False)
    assert await eventually(lambda: len(sink.durable) == 50)
    client.abort()
    await client.connect()  # sends the 50 again first, as librelp does
    for n in range(50, 60):
        await client.send(message(n))
    await client.close()
    assert [line.text.encode() for line in sink.durable] == [message(n) for n in range(60)]
    assert receiver.stats()["relp_resent_skipped"] == 50


async def test_after_the_first_new_frame_a_repeated_message_is_stored_again(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver)
    await client.send(message(1))
    await client.send(message(2))
    await client.wait_all_answered()
    client.abort()
    await client.connect()
    await client.send(message(3))  # new: the session sends nothing again
    await client.send(message(2))  # the same text once more, later: a message of its own
    await client.close()
    assert [line.text.encode() for line in sink.durable] == [message(n) for n in (1, 2, 3, 2)]


async def test_stopping_the_receiver_says_serverclose(start_receiver, sink):
    receiver = await start_receiver(sink, relp_port=0)
    client = await relp_client(receiver)
    await receiver.stop()
    with pytest.raises(ConnectionResetError, match="serverclose"):
        await asyncio.wait_for(client.read_answer(), 5)


async def test_relp_over_tls(start_receiver, sink, tmp_path):
    certificates = make_certificates(tmp_path)
    receiver = await start_receiver(
        sink,
        relp_port=0,
        relp_tls=True,
        tls_cert=str(certificates.server_cert),
        tls_key=str(certificates.server_key),
    )
    context = ssl.create_default_context(cafile=str(certificates.ca))
    client = await relp_client(receiver, ssl=context, server_hostname="localhost")
    for n in range(10):
        await client.send(message(n))
    await client.close()
    assert len(sink.durable) == 10
    # Plain RELP on the TLS port gets no session.
    plain = RelpClient(*receiver.addresses["relp"])
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await asyncio.wait_for(plain.connect(), 5)
