"""Parsing the ids and statuses that callers (REST bodies, socket messages) hand in."""

import re

from incidents.exceptions import ValidationError

REFERENCE = re.compile(r"INC-\d{4}-\d{4,}")


def parse_id(value, name):
    """An object's primary key from a model instance, an int or a string of digits."""
    value = getattr(value, "pk", value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        if value is None:
            raise ValidationError(f"{name} is required.", details={"errors": {name: ["Required."]}})
        raise ValidationError(
            f"{name} must be a positive integer, not {value!r}.",
            details={"errors": {name: ["Must be a positive integer."]}},
        )
    return value


def incident_lookup(value):
    """The lookup of an incident given by its id or by its reference (`INC-2026-0005`, what
    the incident frontend sends as `incident_id`): `{"pk": 5}` or `{"reference": ...}`."""
    if isinstance(value, str) and REFERENCE.fullmatch(value.strip().upper()):
        return {"reference": value.strip().upper()}
    return {"pk": parse_id(value, "incident_id")}


def parse_status(value, choices, what, aliases=None):
    """A status value of `choices` (a TextChoices class), or an older name of one in
    `aliases`; anything else is a clear error."""
    if aliases and isinstance(value, str) and value in aliases:
        return aliases[value]
    if value is None or value == "":
        raise ValidationError("status is required.", details={"errors": {"status": ["Required."]}})
    if not isinstance(value, str) or value not in choices.values:
        allowed = ", ".join(choices.values)
        raise ValidationError(
            f"{value!r} is not a {what} status; use one of: {allowed}.",
            details={"errors": {"status": [f"Must be one of: {allowed}."]}},
        )
    return choices(value)
