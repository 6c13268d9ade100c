"""Failed socket authentications: aggregated in the audit log, and credentials that keep
failing from one source refused without accepting the socket."""

import pytest
from channels.testing import WebsocketCommunicator

from tests.sockets import Client, in_thread
from tests.waiting import until
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)


def failure_rows():
    return list(
        AuditLog.objects.filter(action="realtime.auth_failed")
        .order_by("id")
        .values_list("details", flat=True)
    )


def rows_after_the_first():
    """The rows once there is more than the first, else None."""
    rows = failure_rows()
    return rows if len(rows) > 1 else None


async def test_a_flood_of_bad_tokens_is_one_row_then_one_count_per_source(ws, settings):
    settings.REALTIME = {**settings.REALTIME, "AUTH_FAILURE_WINDOW": 1}
    for number in range(20):  # a different token each time: none is refused early
        client = await ws(f"/ws?token=bad-{number}")
        error, code = await client.receive_close()
        assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
    assert len(await in_thread(failure_rows)) == 1
    rows = await until(
        lambda: in_thread(rows_after_the_first), "the window's count row, written when it ends"
    )
    assert len(rows) == 2
    assert rows[1]["repeated"] == 19
    assert rows[1]["window_seconds"] == 1


async def test_credentials_that_failed_repeatedly_are_refused_without_accepting(ws, settings):
    from threatlens.asgi import application

    limit = settings.REALTIME["AUTH_FAILURE_LIMIT"]
    for _ in range(limit):  # the documented refusal: an error frame, then 1008
        client = await ws("/ws?token=expired-or-forged")
        error, code = await client.receive_close()
        assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
    again = Client(WebsocketCommunicator(application, "/ws?token=expired-or-forged"))
    connected, code = await again.communicator.connect()
    assert (connected, code) == (False, 1008)  # the handshake refused: HTTP 403
    await again.disconnect()
    other = await ws("/ws?token=another-bad-one")  # other credentials are still heard
    error, _ = await other.receive_close()
    assert error["error_code"] == "AUTH_FAILED"
