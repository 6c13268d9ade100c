"""Who is acting right now, for audit rows written far from the request.

Signal receivers (a user saved in the Django admin, a group's permissions changed) have
no request in hand. `AuditContextMiddleware` remembers the current request in a context
variable, and services run by commands set an actor explicitly with `audit_context(...)`;
`threatlens.audit.services.record` falls back to it when its caller names no actor.
A context variable, unlike a thread-local, follows the request through asgiref's
sync/async hops and never leaks into another request.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AuditContext:
    """The acting request or user, and where the action comes from (`manage.py ...`)."""

    request: object = None
    actor: object = None
    source: str = ""
    # A service that writes its own summary row sets this, so the model-signal receivers
    # do not add one row per field or group for the same change.
    model_signals_muted: bool = False


_EMPTY = AuditContext()
_current = ContextVar("threatlens_audit_context", default=None)


def current():
    """The audit context in force (an empty one outside any request or service)."""
    return _current.get() or _EMPTY


@contextmanager
def audit_context(**changes):
    """Run a block with some of the context replaced: `with audit_context(actor=user): ...`."""
    token = _current.set(replace(current(), **changes))
    try:
        yield current()
    finally:
        _current.reset(token)


class AuditContextMiddleware:
    """Makes the current request known to audit rows written by signal receivers.

    Works for sync and async views alike: it only sets a context variable around the
    inner call.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        with audit_context(request=request):
            return self.get_response(request)

    async def _acall(self, request):
        with audit_context(request=request):
            return await self.get_response(request)
