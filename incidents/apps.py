from django.apps import AppConfig
from django.db.models.signals import post_save


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incident response"

    def ready(self):
        from incidents import events, signals  # noqa: F401  (events declares on import)
        from incidents.models import Alert, Incident

        post_save.connect(signals.alert_saved, sender=Alert, dispatch_uid="incidents.alert_saved")
        post_save.connect(
            signals.incident_saved, sender=Incident, dispatch_uid="incidents.incident_saved"
        )

        from incidents.ingest_metrics import IngestCollector
        from incidents.sigma.metrics import SigmaCollector
        from realtime.monitoring import register_metrics

        register_metrics(IngestCollector())
        register_metrics(SigmaCollector())
