from django.apps import AppConfig


class DnsConfig(AppConfig):
    name = "dns"
    verbose_name = "DNS management"

    def ready(self):
        from dns import events, signals  # noqa: F401

        signals.connect()
