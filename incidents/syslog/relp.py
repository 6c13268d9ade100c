"""RELP, the Reliable Event Logging Protocol of rsyslog (`omrelp` sends it, `imrelp`
receives it), on the receiving side.

A session is a TCP (or TLS) connection carrying frames both ways:

    TXNR SP COMMAND SP DATALEN [SP DATA] LF

TXNR is 1-999999999, counting up from 1 in each session (the server's own `serverclose`
uses 0); DATALEN is the length of DATA in bytes. The client sends `open` (its offers:
`relp_version=0`, `relp_software=...`, `commands=syslog`), then `syslog` frames, each a
syslog message, and `close` at the end. The server answers every frame with `rsp` and the
same TXNR: `200 OK` plus its own offers for `open`, `200 OK` for `syslog`, nothing for
`close`. A server going away says `0 serverclose 0`.

Here a `syslog` frame is answered only once its line is stored (`sink.put_durable`), so
what a crash did not store has no `rsp`, and the sender sends it again in its next
session (librelp keeps every unanswered frame and resends them, with new TXNRs, first
thing after `open`). Frames that arrive together are stored together and answered
together.

Sent again, but stored once. A sender's frames that were stored but whose `rsp` never
reached it (the crash came between the two) come again too. RELP has no message id to
tell them apart, so the first frames of a session from a peer are compared with the last
lines stored from that peer (`sink.recent_durable_lines`): as long as each frame is one
of those (counted as a multiset), it is a frame sent again, answered and not stored; the
first frame that is not ends the comparison for the session. Frames are resent first and
in their order, and what was stored is a prefix of what was sent, so that run is exactly
the stored-but-unanswered frames. The one way to get it wrong: a sender's first new
message after reconnecting is byte-for-byte one it sent just before (same timestamp, same
text), which rsyslog's high-precision timestamps make practically impossible;
docs/syslog.md says more.
"""

import logging
import re
from collections import Counter
from typing import NamedTuple

from incidents.syslog.framing import message_text

logger = logging.getLogger(__name__)

MAX_TXNR = 999_999_999
# Lines stored from a peer that a new session's first frames are compared with: several
# times librelp's default window of 128 unanswered frames.
RETRANSMIT_LOOKBACK = 1024
SOFTWARE = "ThreatLens,1,https://github.com/threatlens"

_HEADER = re.compile(rb"([0-9]{1,9}) ([a-zA-Z]{1,32}) ([0-9]{1,9})([ \n])")
# What can still grow into a header (it is only incomplete, not wrong).
_HEADER_PREFIX = re.compile(rb"[0-9]{0,9}(?: (?:[a-zA-Z]{0,32}(?: [0-9]{0,9})?)?)?")
_HEADER_MAX = 9 + 1 + 32 + 1 + 9 + 1


class RelpFrame(NamedTuple):
    """One frame. `data` is None for a frame whose data was longer than allowed (it was
    skipped, not kept)."""

    txnr: int
    command: str
    data: bytes | None


class RelpProtocolError(Exception):
    """The peer does not speak RELP (or broke a frame): the session ends."""


class RelpDecoder:
    """Splits a RELP byte stream into frames. `feed(data)` returns the frames completed;
    it raises RelpProtocolError on bytes that are no RELP frame. Data longer than
    `max_data` is skipped as it arrives (the frame comes back with `data=None`), so a
    session holds at most about `max_data` bytes."""

    __slots__ = ("_buffer", "_skip", "_trailer", "max_data")

    def __init__(self, max_data):
        self.max_data = int(max_data)
        self._buffer = b""
        self._skip = 0  # data bytes of an oversized frame still to skip
        self._trailer = False  # the LF after skipped data is still to come

    def feed(self, data):
        frames = []
        buffer = self._buffer + data if self._buffer else bytes(data)
        position = 0
        end = len(buffer)
        while position < end:
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
                continue
            if self._trailer:
                if buffer[position] != 0x0A:
                    raise RelpProtocolError("a frame does not end with LF")
                self._trailer = False
                position += 1
                continue
            header = _HEADER.match(buffer, position)
            if header is None:
                rest = buffer[position : position + _HEADER_MAX]
                if len(rest) < _HEADER_MAX and _HEADER_PREFIX.fullmatch(rest):
                    break  # an incomplete header
                raise RelpProtocolError(f"not a RELP frame: {rest[:40]!r}")
            txnr, command, length = int(header[1]), header[2].decode().lower(), int(header[3])
            if header[4] == b"\n":
                if length:
                    raise RelpProtocolError(f"frame {txnr} announces {length} bytes but has none")
                frames.append(RelpFrame(txnr, command, b""))
                position = header.end()
                continue
            start = header.end()
            if length > self.max_data:
                frames.append(RelpFrame(txnr, command, None))
                self._skip, self._trailer = length, True
                position = start
                continue
            if end - start < length + 1:
                break  # the data or its LF is not complete yet
            if buffer[start + length] != 0x0A:
                raise RelpProtocolError(f"frame {txnr} does not end with LF after its data")
            frames.append(RelpFrame(txnr, command, buffer[start : start + length]))
            position = start + length + 1
        self._buffer = buffer[position:] if position < end else b""
        return frames


def encode_frame(txnr, command, data=b""):
    """One frame's bytes."""
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode(), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode())


def next_txnr(txnr):
    return 1 if txnr >= MAX_TXNR else txnr + 1


def parse_offers(data):
    """`open` data -> {name: value}: one `name=value` offer a line."""
    offers = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        name, _, value = line.partition("=")
        if name.strip():
            offers[name.strip()] = value.strip()
    return offers


def open_response(offers):
    """The `rsp` data answering `open`: 200 with our offers, or 500 when the client does
    not offer the `syslog` command (nothing else could be sent in that session)."""
    commands = [item.strip() for item in offers.get("commands", "").split(",")]
    if "syslog" not in commands:
        return b"500 required command not supported by client", False
    return (
        b"200 OK\nrelp_version=0\nrelp_software=%s\ncommands=syslog" % SOFTWARE.encode(),
        True,
    )


class RetransmitFilter:
    """Recognises the frames a new session sends again (see the module docstring):
    `is_resent(text)` is True while the session's frames are, one by one, among the
    `recent` lines stored from its peer; the first one that is not ends it for good."""

    __slots__ = ("_recent",)

    def __init__(self, recent):
        self._recent = Counter(recent) if recent else None

    @property
    def active(self):
        return self._recent is not None

    def is_resent(self, text):
        if self._recent is None:
            return False
        count = self._recent.get(text, 0)
        if count:
            self._recent[text] = count - 1
            return True
        self._recent = None
        return False


class RelpAnswer(NamedTuple):
    """What a session makes of the frames of one read: the `rsp` frames to send once
    `texts` are stored, the texts to store, how many messages were malformed or resent,
    and whether the session ends (None, "close": after the replies, "abort": without)."""

    replies: bytes
    texts: list
    malformed: int
    resent: int
    end: str | None


class RelpSession:
    """The server side of one RELP session, without I/O: `await answer(frames)`.

    `recent_lines()` (a coroutine function) gives the lines last stored from the peer;
    it is called once, at `open`, for the RetransmitFilter.
    """

    def __init__(self, recent_lines):
        self.recent_lines = recent_lines
        self.expected = 1
        self.opened = False
        self.resent = RetransmitFilter(None)

    async def answer(self, frames):
        replies, texts, malformed, resent = [], [], 0, 0
        end = None
        for frame in frames:
            if frame.txnr != self.expected:
                logger.warning("RELP frame %d where %d was due", frame.txnr, self.expected)
                end = "abort"
                break
            self.expected = next_txnr(frame.txnr)
            command = frame.command
            if command == "syslog" and self.opened:
                text = None if frame.data is None else message_text(frame.data)
                if text is None:
                    malformed += 1
                elif text and self.resent.is_resent(text):
                    resent += 1
                elif text:
                    texts.append(text)
                replies.append(encode_frame(frame.txnr, "rsp", b"200 OK"))
            elif command == "open" and self.opened:
                replies.append(encode_frame(frame.txnr, "rsp", b"200 connection already open"))
            elif command == "open":
                response, self.opened = open_response(parse_offers(frame.data or b""))
                replies.append(encode_frame(frame.txnr, "rsp", response))
                if not self.opened:
                    end = "close"
                    break
                self.resent = RetransmitFilter(await self.recent_lines())
            elif command == "close":
                replies.append(encode_frame(frame.txnr, "rsp"))
                end = "close"
                break
            elif not self.opened:
                replies.append(encode_frame(frame.txnr, "rsp", b"500 session not open"))
                end = "close"
                break
            else:
                replies.append(encode_frame(frame.txnr, "rsp", b"500 command not supported"))
        return RelpAnswer(b"".join(replies), texts, malformed, resent, end)
