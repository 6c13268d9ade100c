from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "threatlens.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from threatlens.audit import events  # noqa: F401  (declares user_action)
