"""The event catalogue: every event type the hub can carry, declared once.

Domain apps declare their event types from `AppConfig.ready()` with `declare(...)`, in
their `events.py`; `realtime` itself knows no domain. An entry fixes the envelope (by
family), the default priority, the permission a user needs to receive it, the audience
rule, which data fields are sensitive, and the type's payload: its `builder` (the one
function that makes its data) and its `schema` (the `TypedDict`, or the REST serializer,
the data follows). `build(name, ...)` lets code that may not import the declaring app
(`realtime` itself) build a payload.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    THREATLENS = "threatlens"
    INCIDENTS = "incidents"
    DNS = "dns"
    SECURITY = "security"
    SYSTEM = "system"
    USER = "user"


# Families whose clients (threatlens-ws.md, incidents-ws.md) read `{"type": "<event_type>"}`;
# the others use the unified envelope `{"type": "event", "event_type": ...}` of unified-ws.md.
TYPED_FAMILIES = frozenset({Family.THREATLENS, Family.INCIDENTS})


class Audience(StrEnum):
    EVERYONE = "everyone"
    """Every user holding the event type's permission."""
    LISTED = "listed"
    """Only the users and groups the publisher names (e.g. those who may read a zone),
    plus users holding the entry's `see_all_permission`."""
    USER = "user"
    """Only the user the event concerns, plus users holding `see_all_permission`."""


# The receive permissions (codenames on realtime.Event); roles get them by data migration.
RECEIVE_SECURITY = "realtime.receive_security"
RECEIVE_SYSTEM = "realtime.receive_system"
RECEIVE_DNS = "realtime.receive_dns"
RECEIVE_AUDIT = "realtime.receive_audit"
SEE_ALL_USER_EVENTS = "realtime.receive_all_user_events"
PUBLISH = "realtime.publish_event"
VIEW_CONNECTIONS = "realtime.view_connections"

PRIORITY_CRITICAL = 10
PRIORITY_HIGH = 8
PRIORITY_MEDIUM = 5
PRIORITY_LOW = 3
PRIORITY_DEBUG = 1


def priority_label(priority):
    """The unified-ws.md label of an integer priority (DESIGN.md "Envelopes")."""
    if priority >= 9:
        return "critical"
    if priority >= 7:
        return "high"
    if priority >= 4:
        return "normal"
    return "low"


@dataclass(frozen=True, slots=True)
class EventType:
    """One declared event type."""

    name: str
    family: Family
    priority: int
    permission: str | None
    audience: Audience = Audience.EVERYONE
    see_all_permission: str | None = None
    sensitive_fields: tuple[str, ...] = ()
    sensitive_permission: str | None = None
    description: str = ""
    builder: Callable | None = None
    schema: type | None = None

    @property
    def typed(self):
        return self.family in TYPED_FAMILIES


class UnknownEventType(KeyError):
    def __str__(self):
        return f"unknown event type {self.args[0]!r}"


_catalogue: dict[str, EventType] = {}


def declare(name, *, family, priority, permission, **options):
    """Declare an event type; declaring the same name twice with other terms is an error."""
    entry = EventType(
        name=name, family=Family(family), priority=priority, permission=permission, **options
    )
    if not 1 <= priority <= 10:
        raise ValueError(f"{name}: priority must be 1-10, not {priority}")
    if entry.sensitive_fields and not entry.sensitive_permission:
        raise ValueError(f"{name}: sensitive fields need a sensitive_permission")
    existing = _catalogue.get(name)
    if existing is not None and existing != entry:
        raise ValueError(f"event type {name!r} is already declared differently")
    _catalogue[name] = entry
    _sorted.changed()
    return entry


def get(name):
    try:
        return _catalogue[name]
    except KeyError:
        raise UnknownEventType(name) from None


def build(name, *args, **kwargs):
    """The payload of a `name` event, made by the builder its app declared with it."""
    entry = get(name)
    if entry.builder is None:
        raise LookupError(f"event type {name!r} has no payload builder")
    return entry.builder(*args, **kwargs)


def exists(name):
    return name in _catalogue


def undeclare(name):
    """Forget an event type (tests that declared one of their own)."""
    _catalogue.pop(name, None)
    _sorted.changed()


def all_types():
    """Every declared entry, in a stable order (family, then name); sorted once per
    change of the catalogue (every socket's connect asks)."""
    if _sorted.entries is None:
        _sorted.entries = tuple(
            sorted(_catalogue.values(), key=lambda entry: (entry.family, entry.name))
        )
    return _sorted.entries


def version():
    """A number that changes whenever the catalogue does (`declare`, `undeclare`): what
    is derived from it may be kept until then."""
    return _sorted.generation


class _Sorted:
    """The sorted entries, and a generation counted up by every change."""

    def __init__(self):
        self.entries, self.generation = None, 0

    def changed(self):
        self.entries = None
        self.generation += 1


_sorted = _Sorted()


def names():
    return frozenset(_catalogue)
