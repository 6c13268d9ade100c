"""What the pipeline's commands tell operators about where their events go."""

from django.conf import settings


def delivery_note():
    """How events published by this command reach the server's live clients."""
    if settings.REDIS_URL:
        return "Events went through the Redis channel layer to every running server process."
    interval = settings.REALTIME.get("EVENT_POLL_INTERVAL", 0.5)
    return (
        "Events are stored in the event table; a server running on the same database "
        f"delivers them to its live clients within {interval:g} s (embedded default: no "
        "shared channel layer)."
    )


def summary(raw_log):
    """One line about a processed raw log."""
    text = (
        f"{raw_log.source}: raw log {raw_log.pk} {raw_log.status}, {raw_log.lines_total} "
        f"lines ({raw_log.lines_malformed} malformed, {raw_log.lines_unknown} unrecognised), "
        f"{raw_log.events_created} security events, {raw_log.alerts_raised} new alerts, "
        f"{raw_log.processing_time or 0:.2f} s"
    )
    if raw_log.error:
        text += f": {raw_log.error}"
    return text
