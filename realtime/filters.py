"""Per-connection event filters (`set_filter`), parsed strictly and matched cheaply."""

from dataclasses import dataclass

from realtime import catalogue


class FilterError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A filter in force on one connection. Empty sets mean "any"."""

    event_types: frozenset = frozenset()
    categories: frozenset = frozenset()
    sources: frozenset = frozenset()
    min_priority: int = 1
    max_priority: int = 10

    def matches(self, event_type, priority, category, source):
        # Filters apply to every event type: an event without a category or source does
        # not pass a filter that names categories or sources.
        return (
            self.min_priority <= priority <= self.max_priority
            and (not self.event_types or event_type in self.event_types)
            and (not self.categories or category in self.categories)
            and (not self.sources or source in self.sources)
        )

    def as_dict(self):
        return {
            "event_types": sorted(self.event_types),
            "categories": sorted(self.categories),
            "sources": sorted(self.sources),
            "min_priority": self.min_priority,
            "max_priority": self.max_priority,
        }

    @classmethod
    def parse(cls, data):
        """Build a filter from `set_filter` data; raises FilterError naming the bad field."""
        if not isinstance(data, dict):
            raise FilterError("data must be an object")
        event_types = _string_set(data, "event_types")
        unknown = sorted(name for name in event_types if not catalogue.exists(name))
        if unknown:
            raise FilterError(f"unknown event types: {', '.join(unknown)}")
        minimum = _priority(data, "min_priority", 1)
        maximum = _priority(data, "max_priority", 10)
        if minimum > maximum:
            raise FilterError("min_priority must not exceed max_priority")
        return cls(
            event_types=event_types,
            categories=_string_set(data, "categories"),
            sources=_string_set(data, "sources"),
            min_priority=minimum,
            max_priority=maximum,
        )


def _string_set(data, name):
    value = data.get(name)
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise FilterError(f"{name} must be a list of non-empty strings")
    if len(value) > 200:
        raise FilterError(f"{name} may name at most 200 items")
    return frozenset(value)


def _priority(data, name, default):
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise FilterError(f"{name} must be an integer from 1 to 10")
    return value
