"""The shipped Sigma rules on every `migrate` (connected by `IncidentsConfig.ready`).

With SIGMA_SHIPPED_RULES on (the default) the rules of incidents/sigma/rules/ are stored
(`services.sync_shipped`): a new installation runs them at once, and an upgrade brings
their new versions, keeping what an operator enabled or disabled. Off, they are removed
(`services.remove_shipped`) and the built-in rules they replace run.
"""

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate, dispatch_uid="incidents.sigma.shipped_rules")
def store_shipped_rules(sender, app_config=None, using="default", apps=None, **kwargs):
    if getattr(sender, "label", None) != "incidents" or using != "default":
        return
    try:
        # Migrated to a state without the table (a partial `migrate incidents 0004`).
        (apps or _global_apps()).get_model("incidents", "SigmaRule")
    except LookupError:
        return
    from django.conf import settings

    from incidents.sigma import services
    from threatlens.audit.context import audit_context

    with audit_context(source="manage.py migrate"):
        if getattr(settings, "SIGMA_SHIPPED_RULES", True):
            services.sync_shipped()
        else:
            services.remove_shipped()


def _global_apps():
    from django.apps import apps

    return apps
