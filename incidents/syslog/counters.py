"""What the syslog receiver counts, per transport where it applies."""

TRANSPORTS = ("udp", "tcp", "tls", "relp")


class ReceiverCounters:
    """Messages received and malformed per transport, UDP lines the sink had no room
    for, and what RELP sessions skipped or refused. Malformed messages are reported to
    the sink too (`sink.count_malformed`), which counts them for `/metrics`. Touched on
    the event loop's thread only."""

    __slots__ = ("malformed", "received", "relp_protocol_errors", "relp_resent_skipped", "sink",
                 "udp_dropped")  # fmt: skip

    def __init__(self, sink):
        self.sink = sink
        self.received = dict.fromkeys(TRANSPORTS, 0)
        self.malformed = dict.fromkeys(TRANSPORTS, 0)
        self.udp_dropped = 0
        self.relp_resent_skipped = 0
        self.relp_protocol_errors = 0

    def count_malformed(self, count, transport):
        """`count` oversized or binary messages dropped on `transport`."""
        self.malformed[transport] += count
        self.sink.count_malformed(count, transport=transport)
