from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incident response"

    def ready(self):
        from incidents import checks, events  # noqa: F401  (they register on import)
        from incidents.models import (
            Alert,
            Incident,
            IncidentComment,
            IncidentTimelineEntry,
            IncidentWatcher,
        )
        from incidents.sigma import signals  # noqa: F401  (the shipped rules on migrate)
        from threatlens.writeguard import guard

        # Every write goes through the services (incidents.writes), which also announce
        # the changes: no post_save receiver, no second write or publish path.
        guard(
            Alert,
            Incident,
            IncidentComment,
            IncidentTimelineEntry,
            IncidentWatcher,
            services="incidents.services (or cases, triage, response)",
        )

        from incidents.ingest_metrics import IngestCollector
        from incidents.sigma.metrics import SigmaCollector
        from realtime.monitoring import register_metrics

        register_metrics(IngestCollector())
        register_metrics(SigmaCollector())
