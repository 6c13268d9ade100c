from django.apps import AppConfig


class DnsConfig(AppConfig):
    name = "dns"
    verbose_name = "DNS management"

    def ready(self):
        from dns import events  # noqa: F401
        from dns.models import Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
        from threatlens.writeguard import guard

        # Every write goes through dns.services (the admin too): no second write path.
        guard(Zone, Record, ZoneAccess, RpzRule, ThreatFeed, Forwarder, services="dns.services")

        from dns import monitors
        from threatlens.monitoring.metrics import register_dns_metrics_provider
        from threatlens.monitoring.runner import register_monitors

        register_monitors(monitors.monitors)
        register_dns_metrics_provider(monitors.NamedStatistics())
