"""Server fast paths: the one place that touches a library's private state.

The hub delivers through each socket's ASGI `send`. For the servers it knows (uvicorn's
websockets-sansio protocol, daphne), it can do a few things faster or that `send` cannot
do at all; each is a *fast path* here, named in `FAST_PATHS`, with the libraries whose
internals it reads. Everything outside this package talks to a socket through
`SocketAccess`, whatever the server:

- `write_frame(text)`: write an event frame to the transport (True), or decline (False:
  the caller uses the ASGI `send`);
- `release_handshake()`: let the server forget the handshake once accepted;
- `abort()`: drop the TCP connection of a client that stopped reading (False: unknown);
- `buffered()`: bytes the server holds for the socket (None: unknown).

Every socket closes through `close_socket`: a close code the server refuses (daphne
without `daphne_close_codes`) goes out as its private-use stand-in.

Three promises:

- Each fast path is off unless `REALTIME_FAST_PATHS` names it (`all`, the default,
  names every one; `none` turns all off), and off when a library it reads runs at
  another version than the one `constraints.txt` pins (a WARNING says so at start-up).
- A fast path that raises logs a WARNING once per process and turns itself off for that
  socket, which goes on through its ASGI `send`: never open and silent.
- Nothing else in the project reaches into a library's private attributes.

docs/servers.md says how to upgrade a pinned library; bench/RESULTS.md what each path is
worth.
"""

import functools
import logging
import re
import struct
from importlib import metadata

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Fast path -> the distributions whose internals it reads.
UVICORN = ("uvicorn", "websockets")
DAPHNE = ("daphne", "autobahn", "twisted")
FAST_PATHS = {
    # The hub writes an event's frame, built once, to the socket's transport.
    "uvicorn_writes": UVICORN,
    "daphne_writes": DAPHNE,
    # Send at once what Twisted would buffer until the next reactor pass.
    "daphne_write_through": DAPHNE,
    # uvicorn forgets the handshake request and response once the socket is accepted.
    "uvicorn_handshake": UVICORN,
    # autobahn's protocol options read from the factory, not copied into every socket.
    "daphne_options": DAPHNE,
    # Close codes 1001-1014 under daphne (autobahn's sendClose refuses them: 1006).
    "daphne_close_codes": DAPHNE,
    # A stalled client's buffer size and dropping its TCP connection.
    "uvicorn_transport": UVICORN,
    # uvicorn's and websockets' lines per socket not even made below uvicorn's debug.
    "uvicorn_socket_log": UVICORN,
    "daphne_transport": DAPHNE,
    # Channels' router and consumer entry points a coroutine frame shorter, no task per socket.
    "channels_frames": ("channels", "asgiref"),
    # ModelBackend's per-user permission caches dropped before a principal is read.
    "django_permission_cache": ("django",),
}

SETTING = "REALTIME_FAST_PATHS"


class SocketAccess:
    """What the hub may do with one socket beyond its ASGI `send`: here, nothing."""

    __slots__ = ()

    def write_frame(self, text):
        """Write an event frame; False: not written, use the ASGI `send`."""
        return False

    def release_handshake(self):
        """Let the server forget the accepted socket's opening handshake."""

    def abort(self):
        """Drop the TCP connection now; False: not done."""
        return False

    def buffered(self):
        """Bytes the server holds for the socket (None: unknown)."""
        return None


PLAIN = SocketAccess()


class GuardedAccess(SocketAccess):
    """A server's `SocketAccess`: each method that raises warns once, then that fast
    path stays off for this socket and the plain behaviour answers."""

    __slots__ = ("broken",)
    # method name -> fast path; subclasses set it and implement `_<method>`.
    paths = {}

    def __init__(self):
        self.broken = _turned_off(type(self))

    def _broke(self, method, exc):
        self.broken = self.broken | {method}
        failed(self.paths[method], exc)

    # Spelled out, not looked up by name: `write_frame` runs once per socket per event.
    def write_frame(self, text):
        if "write_frame" in self.broken:
            return False
        try:
            return self._write_frame(frame_bytes(text))
        except Exception as exc:
            self._broke("write_frame", exc)
            return False

    def release_handshake(self):
        if "release_handshake" not in self.broken:
            try:
                self._release_handshake()
            except Exception as exc:
                self._broke("release_handshake", exc)

    def abort(self):
        if "abort" in self.broken:
            return False
        try:
            return self._abort()
        except Exception as exc:
            self._broke("abort", exc)
            return False

    def buffered(self):
        if "buffered" in self.broken:
            return None
        try:
            return self._buffered()
        except Exception as exc:
            self._broke("buffered", exc)
            return None


TEXT_FRAME = 0x81  # FIN and opcode 1 (text), RFC 6455 section 5.2
_last_frame = (None, b"")


def frame_bytes(text):
    """The unmasked, final WebSocket text frame carrying `text` (a server's frame), kept
    for the text last asked for: a fan-out asks for one text socket after socket."""
    global _last_frame
    if _last_frame[0] is text:
        return _last_frame[1]
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((TEXT_FRAME, length))
    elif length < 65536:
        header = struct.pack("!BBH", TEXT_FRAME, 126, length)
    else:
        header = struct.pack("!BBQ", TEXT_FRAME, 127, length)
    data = header + payload
    _last_frame = (text, data)
    return data


def access_for(send):
    """The `SocketAccess` for the socket under an ASGI `send` (after its accept: a
    socket that negotiated compression keeps it, and gets no frame writes)."""
    from realtime.servers import daphne, uvicorn

    for server in (uvicorn, daphne):
        access = server.access_for(send)
        if access is not None:
            return access
    return PLAIN


def before_accept(send):
    """What is done for the socket under an ASGI `send` before it is accepted: under
    uvicorn, its lines per socket go to a logger that makes them only at debug."""
    from realtime.servers import uvicorn

    if enabled("uvicorn_socket_log"):
        try:
            uvicorn.quiet_socket_lines(send)
        except Exception as exc:
            failed("uvicorn_socket_log", exc)


def install():
    """At start-up (threatlens/asgi.py): check the pins, patch the server's classes."""
    from realtime.servers import daphne, uvicorn

    for path in configured():
        enabled(path)  # logs a WARNING for a library at an untested version
    daphne.install()
    uvicorn.install()


# --- closing ----------------------------------------------------------------------------------


def close_code_stand_in(code):
    """The private-use code (RFC 6455 section 7.4.2: 4000-4999) that stands for a close
    code a server refuses: 4000 + the last three digits of 1001-1015 (1013 -> 4013).
    None for a code that needs none (1000, 3000-4999, no code)."""
    if code is not None and 1001 <= code <= 1015:
        return code + 3000
    return None


async def close_socket(close, code=None, reason=None):
    """Close a socket with `close(code, reason)` (Channels' `close`, the ASGI
    `websocket.close`); if the server refuses `code`, close with its stand-in instead, so
    the socket always closes. daphne's autobahn refuses every code but 1000 and 3000-4999
    unless `daphne_close_codes` is on (docs/servers.md)."""
    try:
        await close(code, reason)
    except Exception as refused:
        stand_in = close_code_stand_in(code)
        if stand_in is None:
            raise
        try:
            await close(stand_in, reason)
        except Exception:
            raise refused from None
        _close_code_refused(code, stand_in, refused)


def _close_code_refused(code, stand_in, exc):
    if "close code" in _warned:
        return
    _warned.add("close code")
    logger.warning(
        "the server refused close code %s (%s: %s): such sockets close with %s, "
        "4000 + the last three digits of the code (docs/servers.md, close codes)",
        code,
        type(exc).__name__,
        exc,
        stand_in,
    )


# --- settings and pins ------------------------------------------------------------------------


def configured():
    """The fast paths `REALTIME_FAST_PATHS` turns on."""
    names = getattr(settings, SETTING, ["all"])
    if _configured[0] is names:  # asked per socket: parsed once per settings value
        return _configured[1]
    if list(names) == ["all"]:
        chosen = frozenset(FAST_PATHS)
    elif list(names) == ["none"]:
        chosen = frozenset()
    else:
        unknown = sorted(set(names) - set(FAST_PATHS))
        if unknown:
            raise ImproperlyConfigured(
                f"{SETTING} names unknown fast paths {', '.join(unknown)}: use all, none or "
                f"some of {', '.join(FAST_PATHS)}"
            )
        chosen = frozenset(names)
    _configured[:] = [names, chosen]
    return chosen


_configured = [None, frozenset()]


def enabled(path):
    """Whether the fast path `path` is on: configured, and its libraries as pinned."""
    return path in _enabled()


def _enabled():
    """The fast paths on: asked several times per socket, so worked out once per
    settings value (and again after `reset()`)."""
    chosen = configured()
    if _on[0] is not chosen:
        _on[:] = [chosen, frozenset(p for p in chosen if not _untested(FAST_PATHS[p])), {}]
    return _on[1]


_on = [None, frozenset(), {}]  # [configured(), the paths on, {access class: its methods off}]


def _turned_off(access_class):
    """The methods of a `GuardedAccess` class whose fast path is off."""
    on = _enabled()
    off = _on[2].get(access_class)
    if off is None:
        off = _on[2][access_class] = frozenset(
            name for name, path in access_class.paths.items() if path not in on
        )
    return off


def _untested(distributions):
    return [name for name in distributions if not version_tested(name)]


@functools.cache
def version_tested(distribution):
    """Whether `distribution` runs at the version constraints.txt pins (WARNING if not).
    A distribution that is not installed counts as tested: no socket will need it."""
    try:
        running = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return True
    pinned = pinned_versions().get(_normalise(distribution))
    if pinned == running:
        return True
    logger.warning(
        "%s %s runs, constraints.txt pins %s: its server fast paths are off "
        "(docs/servers.md: upgrading a pinned library)",
        distribution,
        running,
        pinned or "nothing",
    )
    return False


@functools.cache
def pinned_versions():
    """{distribution: version} of constraints.txt (empty without the file)."""
    path = settings.BASE_DIR / "constraints.txt"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        logger.warning("%s not readable: every server fast path is off", path)
        return {}
    pins = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+).*", line)
        if match:
            pins[_normalise(match[1])] = match[2]
    return pins


def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


# --- failures ---------------------------------------------------------------------------------

_warned = set()


def failed(path, exc):
    """A fast path raised: a WARNING the first time in this process, then quiet."""
    if path in _warned:
        return
    _warned.add(path)
    logger.warning(
        "server fast path %s failed (%s: %s); its sockets go on through the ASGI send. "
        "Set %s without it, or see docs/servers.md",
        path,
        type(exc).__name__,
        exc,
        SETTING,
    )


def reset():
    """Forget pins and warnings (tests)."""
    version_tested.cache_clear()
    pinned_versions.cache_clear()
    _warned.clear()
    _on[:] = [None, frozenset(), {}]
