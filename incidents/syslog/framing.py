"""Syslog over a byte stream (RFC 6587) and the cleaning of one received message.

    decoder = FrameDecoder(max_size=65536)
    frames, oversized = decoder.feed(data)      # complete messages so far, as bytes
    text = message_text(frame)                  # str, or None for a binary message

Both framings of RFC 6587 are accepted on one connection, decided frame by frame:

- octet counting (section 3.4.1): `MSG-LEN SP SYSLOG-MSG`, MSG-LEN a decimal number of
  1-9 digits that does not start with 0;
- non-transparent framing (section 3.4.2): the message runs to the next LF; a CR just
  before it is dropped.

A frame that starts with 1-9 digits followed by a space is octet-counted; anything else
(a PRI `<`, or digits followed by something other than a space, as in a bare access-log
line `203.0.113.7 - - [...]`) runs to the next LF. rsyslog's imtcp decides the same way;
a LF-terminated line that itself starts with `<digits> ` would be misread, and no syslog
message starts that way.

Memory is bounded per connection: a frame longer than `max_size` is never buffered. An
octet-counted one has its bytes skipped as they arrive, a LF-terminated one is skipped up
to its LF; each counts once in `oversized`, and the frames after it are read as usual.
"""

import re

# The longest MSG-LEN read (9 digits: RELP's limit too, and far above any max_size).
_MAX_LENGTH_DIGITS = 9
# A frame after a LF that may be octet-counted (a regular expression that starts with a
# literal is a fast scan).
_LENGTH_AFTER_LF = re.compile(rb"\n[1-9]")

# C0 controls other than TAB, and DEL: absent from nearly every message, so one check
# decides whether the slow path (binary check, escaping) is needed at all. Deleting them
# with bytes.translate and comparing lengths is that check, several times faster than a
# regular expression's search.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class FrameDecoder:
    """Splits a TCP (or TLS) byte stream into syslog messages, per RFC 6587.

    `feed(data)` returns `(frames, oversized)`: the messages completed by `data`, without
    their framing, and how many frames longer than `max_size` were skipped. `finish()`
    returns the unterminated message left when the peer closed (senders such as `nc`
    do not end their last line), or None.
    """

    __slots__ = ("_buffer", "_discarding", "_skip", "max_size")

    def __init__(self, max_size):
        self.max_size = int(max_size)
        self._buffer = b""
        self._skip = 0  # bytes of an oversized octet-counted frame still to skip
        self._discarding = False  # inside an oversized LF-terminated frame

    @property
    def buffered(self):
        """Bytes held for an incomplete frame (at most about `max_size`)."""
        return len(self._buffer)

    def feed(self, data):
        frames = []
        oversized = 0
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return frames, 0
            data = data[self._skip :]
            self._skip = 0
        buffer = self._buffer + data if self._buffer else bytes(data)
        if not buffer:
            return frames, 0
        if not self._discarding:
            lines = self._lines_only(buffer)
            if lines is not None:
                return lines
        end = len(buffer)
        position = 0
        max_size = self.max_size
        while position < end:
            if self._discarding:
                newline = buffer.find(b"\n", position)
                if newline < 0:
                    position = end
                    break
                position = newline + 1
                self._discarding = False
                continue
            if 0x31 <= buffer[position] <= 0x39:  # "1".."9": perhaps a MSG-LEN
                digits_end = position + 1
                while (
                    digits_end < end
                    and digits_end - position <= _MAX_LENGTH_DIGITS
                    and 0x30 <= buffer[digits_end] <= 0x39
                ):
                    digits_end += 1
                if digits_end == end and digits_end - position <= _MAX_LENGTH_DIGITS:
                    break  # the length is not complete yet
                if buffer[digits_end] == 0x20 and digits_end - position <= _MAX_LENGTH_DIGITS:
                    length = int(buffer[position:digits_end])
                    start = digits_end + 1
                    if length > max_size:
                        oversized += 1
                        if end - start >= length:
                            position = start + length
                            continue
                        self._skip = length - (end - start)
                        position = end
                        break
                    if end - start < length:
                        break  # the message is not complete yet
                    frames.append(buffer[start : start + length])
                    position = start + length
                    continue
            newline = buffer.find(b"\n", position)
            if newline < 0:
                if end - position > max_size + 1:  # + 1: room for a CR before the LF
                    oversized += 1
                    self._discarding = True
                    position = end
                break
            stop = newline - 1 if newline > position and buffer[newline - 1] == 0x0D else newline
            if stop - position > max_size:
                oversized += 1
            elif stop > position:
                frames.append(buffer[position:stop])
            position = newline + 1
        self._buffer = buffer[position:] if position < end else b""
        return frames, oversized

    def _lines_only(self, buffer):
        """`feed`'s result for a buffer in which no frame can be octet-counted (no frame
        starts with 1-9), found with a few calls in C instead of a loop per frame; None
        for any other buffer. The same frames and counts as the general loop."""
        if 0x31 <= buffer[0] <= 0x39 or _LENGTH_AFTER_LF.search(buffer):
            return None
        pieces = buffer.split(b"\n")
        rest = pieces.pop()
        if b"\r" in buffer:
            pieces = [piece[:-1] if piece.endswith(b"\r") else piece for piece in pieces]
        oversized = 0
        max_size = self.max_size
        if pieces and max(map(len, pieces)) > max_size:
            kept = [piece for piece in pieces if len(piece) <= max_size]
            oversized = len(pieces) - len(kept)
            pieces = kept
        if len(rest) > max_size + 1:  # + 1: room for a CR before the LF
            oversized += 1
            self._discarding = True
            rest = b""
        self._buffer = rest
        return [piece for piece in pieces if piece], oversized

    def finish(self):
        """The message left unterminated at the end of the stream, or None."""
        rest, self._buffer = self._buffer, b""
        if self._discarding or self._skip or not rest:
            return None
        # An incomplete octet-counted frame is lost framing, not a message: drop it.
        if (
            0x31 <= rest[0] <= 0x39
            and (space := rest.find(b" ", 0, _MAX_LENGTH_DIGITS + 1)) > 0
            and rest[:space].isdigit()
        ):
            return None
        return rest


def message_text(frame):
    """One message's text as the parsers take it, or None when the message is binary.

    Trailing CR, LF and NUL are dropped (some senders end datagrams with them). A
    message holding a NUL byte, or C0 control bytes in something that is not UTF-8, is
    binary. Other control characters are written as `#` and three octal digits, as
    rsyslog does on receipt (a LF inside an octet-counted message becomes `#012`), so
    that one message is always one line. Text that is not UTF-8 but has no control bytes
    (Latin-1 from an old device) is decoded with replacement characters.
    """
    frame = frame.rstrip(b"\r\n\x00")
    if len(frame.translate(None, _CONTROL_BYTES)) == len(frame):
        return frame.decode("utf-8", "replace")
    if b"\x00" in frame:
        return None
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _CONTROL_TEXT.sub(lambda match: f"#{ord(match.group()):03o}", text)


def message_texts(frames):
    """`message_text` of each frame. Frames read together are checked for control bytes
    in one pass, and when there are none (nearly always) only decoded."""
    joined = b"".join(frames)
    if len(joined.translate(None, _CONTROL_BYTES)) == len(joined):
        return [frame.decode("utf-8", "replace") for frame in frames]
    return [message_text(frame) for frame in frames]
