"""Syslog over TLS (RFC 5425), with a certificate made for the test."""

import asyncio
import os
import ssl
import subprocess
import sys

import pytest

from tests.e2e.live_server import ROOT
from tests.syslog.certificates import make_certificates
from tests.syslog.helpers import eventually


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certificates"))


def client_context(certificates, *, with_certificate=False):
    context = ssl.create_default_context(cafile=str(certificates.ca))
    if with_certificate:
        context.load_cert_chain(str(certificates.client_cert), str(certificates.client_key))
    return context


def tls_config(certificates, **extra):
    return {
        "tls_port": 0,
        "tls_cert": str(certificates.server_cert),
        "tls_key": str(certificates.server_key),
        **extra,
    }


async def test_octet_counted_messages_over_tls_arrive_as_tls_lines(
    start_receiver, sink, certificates
):
    receiver = await start_receiver(sink, **tls_config(certificates))
    host, port = receiver.addresses["tls"]
    _reader, writer = await asyncio.open_connection(
        host, port, ssl=client_context(certificates), server_hostname="localhost"
    )
    message = b"<38>Mar 10 14:02:11 web01 sshd[811]: Accepted publickey for alice"
    writer.write(b"%d %s" % (len(message), message) * 3 + b"<13>and LF framing\n")
    await writer.drain()
    assert await eventually(lambda: len(sink.lines) == 4)
    assert [line.transport for line in sink.lines] == ["tls"] * 4
    assert sink.lines[0].source == "sshd" and sink.texts[3] == "<13>and LF framing"
    writer.close()


async def test_a_plain_tcp_client_on_the_tls_port_does_not_disturb_it(
    start_receiver, sink, certificates
):
    receiver = await start_receiver(sink, **tls_config(certificates))
    host, port = receiver.addresses["tls"]
    _plain_reader, plain = await asyncio.open_connection(host, port)
    plain.write(b"<13>not encrypted\n" * 10)
    await plain.drain()
    _reader, writer = await asyncio.open_connection(
        host, port, ssl=client_context(certificates), server_hostname="localhost"
    )
    writer.write(b"<13>encrypted\n")
    await writer.drain()
    assert await eventually(lambda: sink.texts == ["<13>encrypted"])
    plain.close()
    writer.close()


async def test_with_a_client_ca_a_sender_needs_a_certificate_it_signed(
    start_receiver, sink, certificates
):
    receiver = await start_receiver(
        sink, **tls_config(certificates, tls_client_ca=str(certificates.ca))
    )
    host, port = receiver.addresses["tls"]
    reader, writer = await asyncio.open_connection(
        host, port, ssl=client_context(certificates), server_hostname="localhost"
    )
    writer.write(b"<13>no certificate\n")
    # TLS 1.3: the refusal arrives after the client's side of the handshake, when it
    # reads: an alert, or the connection closed.
    try:
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    except (ssl.SSLError, ConnectionError):
        data = b""
    assert data == b""
    writer.close()

    _reader, writer = await asyncio.open_connection(
        host,
        port,
        ssl=client_context(certificates, with_certificate=True),
        server_hostname="localhost",
    )
    writer.write(b"<13>with a certificate\n")
    await writer.drain()
    assert await eventually(lambda: sink.texts == ["<13>with a certificate"])
    assert receiver.stats()["received"]["tls"] == 1
    writer.close()


def test_a_tls_port_without_a_certificate_stops_the_settings_naming_the_variables():
    env = {**os.environ, "SYSLOG_TLS_PORT": "6514"}
    env.pop("SYSLOG_TLS_CERT", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SYSLOG_TLS_PORT and SYSLOG_RELP_TLS need SYSLOG_TLS_CERT" in result.stderr
