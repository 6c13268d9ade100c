"""A RELP sender for tests, written from the protocol as librelp (rsyslog's omrelp) speaks
it: `open` with offers, `syslog` frames within a window of unanswered ones, `close`; on a
new connection the unanswered frames are sent again first, with new TXNRs."""

import asyncio
import contextlib


class RelpError(Exception):
    pass


class RelpClient:
    """`await client.connect()`, `await client.send(message)`, `await client.close()`.
    `unacked` holds what was sent and not answered, in order; `acked` counts answers."""

    def __init__(self, host, port, *, window=128, ssl=None, server_hostname=None):
        self.host, self.port = host, port
        self.window = window
        self.ssl, self.server_hostname = ssl, server_hostname
        self.unacked = {}  # txnr -> message
        self.acked = 0
        self.reader = self.writer = None
        self.txnr = 0
        self.offers = b""

    async def connect(self, *, resend=True):
        """Open a session; with `resend`, send the unanswered frames again first."""
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.server_hostname
        )
        self.txnr = 0
        offers = b"relp_version=0\nrelp_software=threatlens-tests,1\ncommands=syslog"
        txnr = self._write(b"open", offers)
        answered, _command, data = await self._read_frame()
        if answered != txnr or not data.startswith(b"200 OK"):
            raise RelpError(f"open refused: {answered} {data!r}")
        self.offers = data
        pending, self.unacked = list(self.unacked.values()), {}
        if resend:
            for message in pending:
                self.unacked[self._write(b"syslog", message)] = message
            await self.writer.drain()
        return self

    async def send(self, message, *, read_answers=True):
        """Send one message, first waiting for answers while the window is full. Once
        written, the message is the client's to deliver (it is sent again after a
        reconnect until answered), so this raises only before that, while waiting."""
        while read_answers and len(self.unacked) >= self.window:
            await self.read_answer()
        self.unacked[self._write(b"syslog", message)] = message
        with contextlib.suppress(ConnectionError):
            # A connection gone shows on the next read, which leads to a reconnect.
            await self.writer.drain()

    async def read_answer(self):
        txnr, command, data = await self._read_frame()
        if txnr == 0:
            raise ConnectionResetError(f"the server said {command.decode()}")
        if not data.startswith(b"200"):
            raise RelpError(f"frame {txnr} refused: {data!r}")
        del self.unacked[txnr]
        self.acked += 1

    async def wait_all_answered(self):
        while self.unacked:
            await self.read_answer()

    async def close(self):
        await self.wait_all_answered()
        txnr = self._write(b"close", b"")
        answered, _command, _data = await self._read_frame()
        assert answered == txnr
        self.writer.close()

    def abort(self):
        """Drop the connection without reading the answers on their way (a network cut)."""
        self.writer.transport.abort()

    def _write(self, command, data):
        self.txnr += 1
        if data:
            frame = b"%d %s %d %s\n" % (self.txnr, command, len(data), data)
        else:
            frame = b"%d %s 0\n" % (self.txnr, command)
        self.writer.write(frame)
        return self.txnr

    async def _read_frame(self):
        txnr = int((await self.reader.readuntil(b" "))[:-1])
        command = (await self.reader.readuntil(b" "))[:-1]
        digits = b""
        while (char := await self.reader.readexactly(1)) not in (b" ", b"\n"):
            digits += char
        data = b""
        if char == b" ":
            data = await self.reader.readexactly(int(digits))
            if await self.reader.readexactly(1) != b"\n":
                raise RelpError("no LF after the data")
        if command not in (b"rsp", b"serverclose"):
            raise RelpError(f"unexpected command {command!r}")
        return txnr, command, data
