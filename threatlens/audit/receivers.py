"""The audit log's side of other apps' signals: sockets' audit rows (`realtime.auditing`)."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from threatlens.audit.services import record, record_many


def write_socket_rows(sender, *, rows, live, **kwargs):
    """Write sockets' audit rows in one transaction (`user_action` for each if `live`).
    Should one name a user deleted since, each is written on its own instead."""
    try:
        with transaction.atomic():
            record_many([_fields(row) for row in rows], publish=live)
    except IntegrityError:
        for row in rows:
            _write_alone(row, live)


def _write_alone(row, live):
    try:
        with transaction.atomic():
            _record(_fields(row), live)
    except IntegrityError:
        if row.user_id is None:
            raise
        # The user was deleted since: the row names them in its details instead.
        fields = _fields(row)
        fields.update(actor=None, details={**row.details, "username": row.username})
        _record(fields, live)


def _record(fields, live):
    if live:
        record(**fields)
    else:
        record_many([fields], publish=False)


def _fields(row):
    # The row needs the user's id and name, which the socket knows: no query for them.
    actor = (
        get_user_model()(pk=row.user_id, username=row.username) if row.user_id is not None else None
    )
    return {
        "action": row.action,
        "actor": actor,
        "details": row.details,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "target_type": "realtime.connection",
        "target_id": row.target_id,
    }


def record_connections_action(sender, *, action, request, target_type, target_id, **kwargs):
    """An administrator's action on live connections (`realtime.views`)."""
    record(action, request=request, target_type=target_type, target_id=target_id)
