"""Ingest test helpers: log lines written the way the daemons write them, at fixed event
times, and the events the pipeline published."""

from datetime import UTC, datetime, timedelta

from realtime.models import Event

# Event times of the generated lines: a fixed hour, so tests never depend on the clock.
T0 = datetime(2025, 3, 10, 14, 0, 0, tzinfo=UTC)


# --- log lines ------------------------------------------------------------------------------


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def _stamp(moment):
    return moment.isoformat(timespec="microseconds")


def ssh_failure(seconds, *, ip="203.0.113.45", user="root", port=40000):
    return (
        f"{_stamp(at(seconds))} web01 sshd[2603]: Failed password for {user} from {ip} "
        f"port {port} ssh2"
    )


def ssh_success(seconds, *, ip="203.0.113.45", user="backup"):
    return (
        f"{_stamp(at(seconds))} web01 sshd[2610]: Accepted password for {user} from {ip} "
        "port 40100 ssh2"
    )


def cron_line(seconds):
    return (
        f"{_stamp(at(seconds))} web01 CRON[3001]: pam_unix(cron:session): session opened "
        "for user root(uid=0) by (uid=0)"
    )


def bind_query(seconds, *, client="10.20.2.57", domain="portal.northwind.example", qtype="A"):
    moment = at(seconds)
    stamp = moment.strftime("%d-%b-%Y %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return (
        f"{stamp} queries: info: client @0x7f3a2ccea9b1 {client}#26819 ({domain}): "
        f"query: {domain} IN {qtype} +E(0) (10.20.0.53)"
    )


def brute_force(count=26, *, ip="203.0.113.45", every=20, start=0, users=("root", "admin",
                "oracle", "postgres", "ubuntu")):  # fmt: skip
    """`count` failed SSH logins from `ip`, `every` seconds apart from `start`, cycling
    through `users` (no one user reaches the per-account threshold)."""
    return [
        ssh_failure(start + i * every, ip=ip, user=users[i % len(users)], port=40000 + i)
        for i in range(count)
    ]


def text(lines):
    return "\n".join(lines) + "\n"


# --- events -----------------------------------------------------------------------------------


def events(event_type=None):
    """Published events, oldest first, as (event_type, data) pairs."""
    queryset = Event.objects.order_by("id")
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    return [(event.event_type, event.data) for event in queryset]


def event_data(event_type):
    return [data for _type, data in events(event_type)]


def stages(raw_log_id=None):
    """(stage, status) of the processing_update events, in order."""
    return [
        (data["stage"], data["status"])
        for data in event_data("processing_update")
        if raw_log_id is None or data["raw_log_id"] == str(raw_log_id)
    ]
