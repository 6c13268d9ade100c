"""Natural order of record names: `host2` before `host10` (digit runs compare as numbers).

The console sorts live rows with the same rule (`naturalKey` in `pages/dns.js`), so a
record that arrives over the socket lands where a reload would put it.
"""

import re

_DIGITS = re.compile(r"(\d+)")


def natural_key(text):
    """A sort key of `text`: case-folded text runs and digit runs as numbers, alternating
    (`re.split` with a group always starts with a text run), so keys compare position by
    position without mixing types."""
    parts = _DIGITS.split(text.casefold())
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def record_sort_key(record):
    """Records by name in natural order, then type, then id (stable)."""
    return (natural_key(record.name), record.record_type, record.pk)
