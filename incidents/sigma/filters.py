"""The `technique` query filter of `/api/alerts/` and `/api/events/`: alerts and events
raised by Sigma rules tagged with an ATT&CK technique (a parent id also finds its
sub-techniques: T1110 finds T1110.001)."""

import re

import django_filters
from django.core.validators import RegexValidator

_TECHNIQUE = re.compile(r"^[Tt]\d{4}(?:\.\d{3})?$")


class TechniqueFilter(django_filters.CharFilter):
    """`technique=T1110` over a JSON list of technique ids at `field_name`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "an ATT&CK technique id, e.g. T1110 or T1110.001")
        # A form-field validator: a bad id is a 400 through the filter set, like other filters.
        kwargs.setdefault(
            "validators",
            [RegexValidator(_TECHNIQUE, "not an ATT&CK technique id such as T1110 or T1110.001")],
        )
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        technique = value.strip().upper()
        # The list's JSON text holds each id in quotes: '"T1110' matches T1110 and its
        # sub-techniques and nothing else, on SQLite and PostgreSQL alike.
        return qs.filter(**{f"{self.field_name}__icontains": f'"{technique}'})
