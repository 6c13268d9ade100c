"""Writing the audit log: the one function every app calls."""

import ipaddress

from django.db import models

from realtime.publishing import publish_many_on_commit, publish_on_commit
from threatlens.audit import context
from threatlens.audit.events import user_action_data
from threatlens.audit.models import AuditLog
from threatlens.clientinfo import request_address, request_user_agent


def record(action, **fields):
    """Write one audit row and tell admins (`user_action`) once the transaction commits.

    `action` is a short dotted verb (`alert.take_ownership`, `auth.login_failed`). The
    keyword arguments, all optional: `actor`; `target`, a model instance (or give
    `target_type`/`target_id`/`target_repr`); `old`/`new`, the changed fields' values
    before and after; `details`; `request`, which fills in the client address and user
    agent; or `ip` and `user_agent` themselves.

    When the caller names neither `actor` nor `request`, the current audit context is
    used (the request seen by `AuditContextMiddleware`, or the actor a service or command
    set with `audit_context`), so rows written by signal receivers still say who acted.
    A `source` set in the context (`manage.py create_user`) is added to `details`.
    """
    entry = _entry(action, **fields)
    entry.save()
    publish_on_commit("user_action", user_action_data(entry))
    return entry


def record_many(rows, *, publish=True):
    """Write several audit rows in one INSERT, each `rows` item being `record`'s keyword
    arguments (`action` included); admins hear of each once the transaction commits,
    unless `publish` is false (rows kept, not pushed live: sockets' own sessions)."""
    entries = AuditLog.objects.bulk_create([_entry(**row) for row in rows])
    if publish:
        publish_many_on_commit([("user_action", user_action_data(entry)) for entry in entries])
    return entries


def _entry(
    action,
    *,
    actor=None,
    target=None,
    old=None,
    new=None,
    details=None,
    request=None,
    ip=None,
    user_agent="",
    target_type="",
    target_id="",
    target_repr="",
):
    """The unsaved row `record` writes (its keyword arguments are these)."""
    ctx = context.current()
    if actor is None and request is None:
        actor = ctx.actor
        if actor is None:
            request = ctx.request
    if request is not None:
        ip = ip or request_address(request)
        user_agent = user_agent or request_user_agent(request)
        if actor is None:
            user = getattr(request, "user", None)
            actor = user if user is not None and user.is_authenticated else None
    if ctx.source:
        details = {"source": ctx.source, **(details or {})}
    if isinstance(target, models.Model):
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)[:200]
    return AuditLog(
        actor=actor if actor is not None and actor.pk else None,
        actor_username=getattr(actor, "username", "") or "",
        action=action[:64],
        target_type=target_type,
        target_id=str(target_id)[:64],
        target_repr=str(target_repr)[:200],
        old_values=old,
        new_values=new,
        details=details,
        ip_address=_valid_ip(ip),
        user_agent=(user_agent or "")[:300],
    )


def _valid_ip(value):
    # A forwarded-for header can carry anything; a bad value must not break the write
    # (PostgreSQL's inet column rejects it), it is simply not recorded.
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None
