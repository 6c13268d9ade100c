"""The syslog receiver: UDP, TCP, TLS and RELP in, lines out to the intake.

- `framing`: RFC 6587 frames on a byte stream, and the cleaning of one message;
- `routing`: the source hint of a message, from its app-name or tag;
- `relp`: RELP frames and what a session answers;
- `server`: `SyslogReceiver`, the listeners on one asyncio loop;
- `sink`: the interface lines are handed to, and the interim sink on raw logs;
- `line_queue`: the sink's bounded queue, its backpressure and its batches;
- `service`: the receiver inside the server process, and for `manage.py run_syslog`.

docs/syslog.md describes the whole.
"""
