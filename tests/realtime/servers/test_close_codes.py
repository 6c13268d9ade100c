"""A close code the server refuses goes out as its stand-in: the socket always closes
(realtime.servers.close_socket, docs/servers.md). Real daphne servers with the fast path on
and off: tests/e2e/test_clients.py."""

import pytest
from autobahn.websocket.protocol import WebSocketProtocol

from realtime import servers
from realtime.servers import daphne


class AutobahnSocket:
    """autobahn's own `sendClose`, which daphne's plain path calls for a close: it refuses
    every code but 1000 and 3000-4999. The close frames it would write are recorded."""

    sendClose = WebSocketProtocol.sendClose

    def __init__(self):
        self.frames = []

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        self.frames.append(code)

    async def close(self, code, reason):  # the consumer's close, through daphne
        self.sendClose(code=code)


@pytest.fixture(autouse=True)
def _warnings_forgotten():
    servers.reset()
    yield
    servers.reset()


async def test_codes_autobahn_refuses_go_out_as_their_stand_ins_with_one_warning(caplog):
    socket = AutobahnSocket()
    for code in (1013, 1012, 1008):
        await servers.close_socket(socket.close, code)
    assert socket.frames == [4013, 4012, 4008]
    warnings = [r for r in caplog.records if "refused close code" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"


async def test_codes_the_server_takes_go_out_unchanged(caplog):
    socket = AutobahnSocket()
    for code in (1000, 4001, None):
        await servers.close_socket(socket.close, code)
    assert socket.frames == [1000, 4001, None]
    assert not caplog.records


async def test_a_close_that_fails_for_another_reason_raises_its_own_error():
    tried = []

    async def gone(code, reason):
        tried.append(code)
        raise ConnectionError(f"client gone ({code})")

    with pytest.raises(ConnectionError, match=r"\(1013\)"):
        await servers.close_socket(gone, 1013)
    with pytest.raises(ConnectionError, match=r"\(1000\)"):
        await servers.close_socket(gone, 1000)
    assert tried == [1013, 4013, 1000]  # a code with no stand-in is not tried again


def test_stand_ins_are_private_use_codes_with_the_same_last_digits():
    assert [servers.close_code_stand_in(code) for code in (1003, 1011, 1012, 1013)] == [
        4003,
        4011,
        4012,
        4013,
    ]
    assert [servers.close_code_stand_in(code) for code in (None, 1000, 3000, 4013)] == [None] * 4


def test_a_broken_close_code_patch_closes_with_the_stand_in(caplog):
    class Protocol:
        """daphne's `serverClose` over an autobahn that renamed `sendCloseFrame`'s
        `isReply`: the patch's call fails, autobahn's own `sendClose` still works."""

        def __init__(self):
            self.frames = []

        def sendCloseFrame(self, code=None, reasonUtf8=None, is_reply=False):
            self.frames.append(code)

        def sendClose(self, code=None, reason=None):
            if code != 1000 and not 3000 <= code <= 4999:  # autobahn's rule
                raise Exception(f"invalid close code {code}")
            self.sendCloseFrame(code=code, is_reply=False)

        def serverClose(self, code=None):  # daphne's
            self.sendClose(code=1000 if code is None else code)

    daphne._patch_close(Protocol)
    protocol = Protocol()
    protocol.serverClose(1013)
    protocol.serverClose(1012)
    protocol.serverClose()
    assert protocol.frames == [4013, 4012, 1000]
    warnings = [r for r in caplog.records if "daphne_close_codes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
