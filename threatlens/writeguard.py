"""One write path: models whose rows only their app's services may write.

An app lists such models in its `AppConfig.ready()` with `guard(Model, ..., services=...)`.
From then on a plain `save()` or `delete()` of one of them (an admin that forgot the
service, a shell, a new module) raises `DirectWrite` unless it runs inside
`service_writes()`, the block the services write in. The services are where permission,
validation, audit and events live, so a write that skips them is a bug, and this makes
it a loud one in tests and in production alike.

Not guarded, as Django sends no signal for them: `queryset.update()`, `bulk_create()` and
a queryset's fast delete. The services that use them announce the batch themselves.
Deleting a row of another model (a user, a group) still takes its guarded dependants
along (a cascade), as the database would.
"""

import contextvars
from contextlib import contextmanager

from django.db.models.signals import pre_delete, pre_save

_inside_services = contextvars.ContextVar("service_writes", default=False)
_services_of = {}


class DirectWrite(RuntimeError):
    """A guarded model was saved or deleted outside its services."""


@contextmanager
def service_writes():
    """The services' writes (and test setup that deliberately writes rows directly)."""
    token = _inside_services.set(True)
    try:
        yield
    finally:
        _inside_services.reset(token)


def guard(*models, services):
    """Refuse plain writes of `models`; `services` names the module to call instead."""
    for model in models:
        _services_of[model] = services
        uid = f"writeguard.{model._meta.label}"
        pre_save.connect(_refuse_save, sender=model, dispatch_uid=uid + ".save")
        pre_delete.connect(_refuse_delete, sender=model, dispatch_uid=uid + ".delete")


def guarded(model):
    return model in _services_of


def _refuse_save(sender, instance, raw=False, **kwargs):
    if raw or _inside_services.get():  # raw: loaddata restoring rows
        return
    raise DirectWrite(_message(sender, "saved"))


def _refuse_delete(sender, instance, origin=None, **kwargs):
    if _inside_services.get():
        return
    origin_model = origin if isinstance(origin, type) else type(origin)
    origin_model = getattr(origin, "model", origin_model)  # a queryset's deletion
    if origin is not None and origin_model not in _services_of:
        return  # a cascade from an unguarded row (a user, a group) being deleted
    raise DirectWrite(_message(sender, "deleted"))


def _message(model, done):
    return (
        f"A {model._meta.verbose_name} was {done} directly; call {_services_of[model]} "
        "instead, which checks permission, validates, audits and publishes the change "
        "(test setup that means it: `with threatlens.writeguard.service_writes():`)."
    )
