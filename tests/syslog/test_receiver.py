"""The receiver over real UDP and TCP sockets on loopback, into a recording sink."""

import asyncio
import contextlib
import os
import socket

import pytest

from incidents.syslog.server import READ_SIZE, ReceiverConfig, SyslogReceiver
from tests.syslog.helpers import RecordingSink, eventually

SSH_FAILURE = (
    "<38>Mar 10 14:02:11 web01 sshd[811]: Failed password for root from 203.0.113.45 "
    "port 51234 ssh2"
)
NGINX = (
    "<190>1 2025-03-10T14:02:11Z web01 nginx - - - 203.0.113.7 - - "
    '[10/Mar/2025:14:02:11 +0000] "GET / HTTP/1.1" 200 5 "-" "curl"'
)


def send_udp(address, *datagrams):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, tuple(address))


async def open_tcp(address):
    return await asyncio.open_connection(*address)


async def test_udp_datagrams_are_one_message_each_with_their_source_and_peer(start_receiver, sink):
    receiver = await start_receiver(sink, udp_port=0)
    send_udp(receiver.addresses["udp"], SSH_FAILURE.encode(), NGINX.encode() + b"\n")
    assert await eventually(lambda: len(sink.lines) == 2)
    first, second = sorted(sink.lines, key=lambda line: line.source, reverse=True)
    assert (first.text, first.source, first.transport, first.peer) == (
        SSH_FAILURE, "sshd", "udp", "127.0.0.1"
    )  # fmt: skip
    assert (second.text, second.source) == (NGINX, "nginx")
    assert receiver.stats()["received"]["udp"] == 2


async def test_udp_oversized_and_binary_datagrams_are_counted_as_malformed(start_receiver, sink):
    receiver = await start_receiver(sink, udp_port=0, max_message_bytes=600)
    send_udp(receiver.addresses["udp"], b"<13>" + b"x" * 700, b"<13>\x00\x01bin", b"<13>fine")
    assert await eventually(lambda: sink.texts == ["<13>fine"] and sink.malformed["udp"] == 2)


async def test_udp_lines_the_sink_has_no_room_for_are_dropped_and_counted(start_receiver):
    sink = RecordingSink(capacity=3)
    receiver = await start_receiver(sink, udp_port=0)
    send_udp(receiver.addresses["udp"], *(b"<13>line %d" % n for n in range(5)))
    assert await eventually(lambda: sink.dropped == 2)
    assert len(sink.lines) == 3
    assert receiver.stats()["udp_dropped"] == 2


@pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="Linux counts these drops")
async def test_datagrams_the_kernel_drops_on_a_full_buffer_are_counted(start_receiver, sink):
    receiver = await start_receiver(sink, udp_port=0, udp_receive_buffer=4096)
    assert receiver.stats()["udp_kernel_drops"] == 0
    # The loop does not run while this sends, so the small buffer overflows.
    send_udp(receiver.addresses["udp"], *([b"<13>" + b"f" * 500] * 200))
    assert receiver.stats()["udp_kernel_drops"] > 0
    assert await eventually(lambda: len(sink.lines) + receiver.stats()["udp_kernel_drops"] == 200)


async def test_tcp_takes_both_framings_on_one_connection(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0)
    reader, writer = await open_tcp(receiver.addresses["tcp"])
    counted = NGINX.encode()
    writer.write(SSH_FAILURE.encode() + b"\n" + b"%d %s" % (len(counted), counted) + b"<13>last\n")
    await writer.drain()
    assert await eventually(lambda: len(sink.lines) == 3)
    assert sink.texts == [SSH_FAILURE, NGINX, "<13>last"]
    assert [line.transport for line in sink.lines] == ["tcp"] * 3
    writer.close()


async def test_a_message_split_across_reads_arrives_whole(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0)
    _reader, writer = await open_tcp(receiver.addresses["tcp"])
    counted = b"%d %s" % (len(NGINX), NGINX.encode())
    for piece in (counted[:2], counted[2:50], counted[50:], SSH_FAILURE.encode()[:30]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)  # separate reads on the receiving side
    assert await eventually(lambda: sink.texts == [NGINX])
    writer.write(SSH_FAILURE.encode()[30:] + b"\n")
    assert await eventually(lambda: sink.texts == [NGINX, SSH_FAILURE])
    writer.close()


async def test_many_messages_in_one_read_all_arrive_in_order(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0)
    _reader, writer = await open_tcp(receiver.addresses["tcp"])
    writer.write(b"".join(b"<13>Mar 10 14:02:11 h app: message %d\n" % n for n in range(2000)))
    await writer.drain()
    assert await eventually(lambda: len(sink.lines) == 2000)
    assert sink.texts[1999].endswith("message 1999")
    assert sink.texts == sorted(sink.texts, key=lambda text: int(text.rsplit(" ", 1)[1]))
    writer.close()


async def test_oversized_and_binary_messages_are_counted_drops_and_the_connection_goes_on(
    start_receiver, sink
):
    receiver = await start_receiver(sink, tcp_port=0, max_message_bytes=600)
    reader, writer = await open_tcp(receiver.addresses["tcp"])
    writer.write(b"<13>" + b"x" * 5000 + b"\n")  # too long, LF-terminated
    writer.write(b"9000 " + b"y" * 9000)  # too long, octet-counted
    writer.write(b"<13>binary\x00\x01\x02\n")
    writer.write(b"<13>still here\n")
    await writer.drain()
    assert await eventually(lambda: sink.texts == ["<13>still here"])
    assert sink.malformed["tcp"] == 3
    assert receiver.stats()["malformed"]["tcp"] == 3
    assert not reader.at_eof()
    writer.close()


async def test_the_last_line_without_lf_is_kept_when_the_sender_closes(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0)
    _reader, writer = await open_tcp(receiver.addresses["tcp"])
    writer.write(b"<13>first\n<13>last, no newline")
    await writer.drain()
    writer.close()
    assert await eventually(lambda: sink.texts == ["<13>first", "<13>last, no newline"])


async def test_a_full_sink_makes_the_tcp_sender_wait_and_nothing_is_dropped(start_receiver):
    sink = RecordingSink(capacity=100)
    receiver = await start_receiver(sink, tcp_port=0)
    sock = socket.create_connection(receiver.addresses["tcp"])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.setblocking(False)
    line = b"<13>Mar 10 14:02:11 host app: " + b"p" * 200 + b"\n"
    total = 20_000
    payload = line * total
    sent = 0
    # Write until the socket takes no more: the receiver stopped reading.
    for _ in range(400):
        try:
            sent += sock.send(payload[sent:])
        except BlockingIOError:
            await asyncio.sleep(0.02)
            try:
                sent += sock.send(payload[sent:])
            except BlockingIOError:
                break
        await asyncio.sleep(0)
    assert sent < len(payload), "the sender was never made to wait"
    assert await eventually(lambda: len(sink.lines) >= 100)
    await asyncio.sleep(0.2)
    # Nothing more is read while the sink is full: one read's worth at most.
    assert len(sink.lines) <= 100 + READ_SIZE // len(line) + 1
    # The pipeline catches up, again and again: every line arrives, none dropped.
    while sent < len(payload) or len(sink.lines) < total:
        sink.release()
        with contextlib.suppress(BlockingIOError):
            sent += sock.send(payload[sent:])
        await asyncio.sleep(0.005)
        assert receiver.stats()["malformed"]["tcp"] == 0
    sock.close()
    assert len(sink.lines) == total and sink.dropped == 0


async def test_connections_beyond_the_limit_are_closed_at_once(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0, max_connections=2)
    kept = [await open_tcp(receiver.addresses["tcp"]) for _ in range(2)]
    await eventually(lambda: receiver.stats()["connections_open"] == 2)
    reader, writer = await open_tcp(receiver.addresses["tcp"])
    try:
        data = await asyncio.wait_for(reader.read(1), 5)
    except ConnectionResetError:
        data = b""
    assert data == b""
    assert receiver.stats()["connections_refused"] == 1
    kept[0][1].write(b"<13>still served\n")
    assert await eventually(lambda: sink.texts == ["<13>still served"])
    for _reader, kept_writer in kept:
        kept_writer.close()
    writer.close()


async def test_an_idle_connection_is_closed(start_receiver, sink):
    receiver = await start_receiver(sink, tcp_port=0, idle_timeout=0.3)
    reader, writer = await open_tcp(receiver.addresses["tcp"])
    writer.write(b"<13>hello\n")
    assert await asyncio.wait_for(reader.read(1), 5) == b""
    assert receiver.stats()["connections_timed_out"] == 1
    assert sink.texts == ["<13>hello"]
    writer.close()


async def test_a_port_in_use_fails_start_naming_it_and_binds_nothing(start_receiver, sink):
    first = await start_receiver(sink, tcp_port=0)
    host, port = first.addresses["tcp"]
    second = SyslogReceiver(sink, ReceiverConfig(udp_port=0, tcp_port=port))
    with pytest.raises(OSError, match=f"syslog tcp 127.0.0.1:{port}"):
        await second.start()
    assert second.addresses == {}


async def test_a_udp_port_in_use_is_not_shared_with_a_second_receiver(start_receiver, sink):
    first = await start_receiver(sink, udp_port=0)
    port = first.addresses["udp"][1]
    second = SyslogReceiver(sink, ReceiverConfig(udp_port=port))
    with pytest.raises(OSError, match=f"syslog udp 127.0.0.1:{port}"):
        await second.start()


async def test_ipv4_senders_on_a_dual_stack_listener_are_known_by_their_ipv4_address(
    start_receiver, sink
):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        receiver = await start_receiver(sink, bind="::", tcp_port=0, udp_port=0)
    except OSError as exc:
        pytest.skip(f"cannot listen on ::: {exc}")
    _reader, writer = await open_tcp(("127.0.0.1", receiver.addresses["tcp"][1]))
    writer.write(b"<13>over tcp\n")
    send_udp(("127.0.0.1", receiver.addresses["udp"][1]), b"<13>over udp")
    assert await eventually(lambda: len(sink.lines) == 2)
    assert {line.peer for line in sink.lines} == {"127.0.0.1"}
    writer.close()
