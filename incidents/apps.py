from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incident response"

    def ready(self):
        from incidents import events  # noqa: F401
