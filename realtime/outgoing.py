"""An event as the hub holds it while it fans it out (and as replay sends it)."""

import time

from realtime import envelopes


class OutgoingEvent:
    """One event as the hub holds it: metadata for the per-connection checks, and its frame
    text, built once per envelope in use (and once more, lazily, without the sensitive
    fields)."""

    __slots__ = (
        "id",
        "entry",
        "priority",
        "category",
        "source",
        "users",
        "groups",
        "published_at",
        "timestamp",
        "data_json",
        "_frame",
        "_redacted",
        "_flat",
        "_flat_redacted",
    )

    def __init__(self, message, entry):
        self.id = message["id"]
        self.entry = entry
        self.priority = message["priority"]
        self.category = message.get("category") or ""
        self.source = message.get("source") or ""
        users, group_ids = message.get("users"), message.get("groups")
        self.users = frozenset(users) if users else frozenset()
        self.groups = frozenset(group_ids) if group_ids else frozenset()
        self.published_at = message.get("published_at") or time.time()
        self.timestamp = message["timestamp"]
        self.data_json = message["data"]
        self._frame = None
        self._redacted = None
        self._flat = None
        self._flat_redacted = None

    def frame_for(self, principal, flat=False):
        """The event's frame for `principal` (without the sensitive fields for those who may
        not see them): in its family's envelope, or in the flat one (`flat`)."""
        entry = self.entry
        if entry.sensitive_fields and not principal.has_perm(entry.sensitive_permission):
            if flat:
                if self._flat_redacted is None:
                    self._flat_redacted = self._build(self._redacted_data(), flat=True)
                return self._flat_redacted
            if self._redacted is None:
                self._redacted = self._build(self._redacted_data())
            return self._redacted
        if flat:
            if self._flat is None:
                self._flat = self._build(self.data_json, flat=True)
            return self._flat
        if self._frame is None:
            self._frame = self._build(self.data_json)
        return self._frame

    def replay_frame(self, principal, flat=False):
        """The frame replay sends (marked `replayed`): built for one connection, not kept."""
        data_json = self.data_json
        entry = self.entry
        if entry.sensitive_fields and not principal.has_perm(entry.sensitive_permission):
            data_json = self._redacted_data()
        return self._build(data_json, replayed=True, flat=flat)

    def _build(self, data_json, replayed=False, flat=False):
        build = envelopes.flat_event_frame if flat else envelopes.event_frame
        return build(
            self.entry,
            message_id=self.id,
            data_json=data_json,
            timestamp=self.timestamp,
            priority=self.priority,
            replayed=replayed,
        )

    def _redacted_data(self):
        data = envelopes.decode(self.data_json)
        for field in self.entry.sensitive_fields:
            data.pop(field, None)
        return envelopes.encode(data)
