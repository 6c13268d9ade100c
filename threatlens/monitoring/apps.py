from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "threatlens.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from threatlens.monitoring import events  # noqa: F401
