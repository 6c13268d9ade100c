from django.apps import AppConfig


class DnsConfig(AppConfig):
    name = "dns"
    verbose_name = "DNS management"

    def ready(self):
        from dns import events, signals  # noqa: F401

        signals.connect()

        from dns import monitors
        from threatlens.monitoring.metrics import register_dns_metrics_provider
        from threatlens.monitoring.runner import register_monitors

        register_monitors(monitors.monitors)
        register_dns_metrics_provider(monitors.NamedStatistics())
