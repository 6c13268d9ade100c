"""Pages of the analyst UI.

Each page is a template that renders its shell (navigation, headings, empty containers of a
fixed size) and a JSON configuration (`page-config`: who the user is, what they may do, the
status transitions the services allow); the page's script then loads the data over the REST
API and keeps it live over the hub socket, as any other frontend would. Nothing here writes:
every change goes through the REST API and therefore through the domain services.
"""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView

from dns.models import Record, RpzRule, Zone
from incidents.models import (
    ALERT_TRANSITIONS,
    INCIDENT_TRANSITIONS,
    OPEN_INCIDENT_STATUSES,
    AlertStatus,
    Incident,
    IncidentStatus,
    IncidentWatcher,
)
from threatlens.accounts import throttling
from threatlens.accounts.roles import role_of
from threatlens.clientinfo import request_address

# What the pages may offer, by permission (the services check again on every write).
PERMISSION_FLAGS = {
    "receive_security": "realtime.receive_security",
    "receive_system": "realtime.receive_system",
    "receive_dns": "realtime.receive_dns",
    "view_alerts": "incidents.view_alert",
    "take_alerts": "incidents.change_alert",
    "reassign_alerts": "incidents.reassign_alert",
    "change_others_alerts": "incidents.change_others_alert",
    "view_incidents": "incidents.view_incident",
    "view_all_incidents": "incidents.view_all_incidents",
    "change_incidents": "incidents.change_incident",
    "comment_incidents": "incidents.add_incidentcomment",
    "view_zones": "dns.view_zone",
    "add_zones": "dns.add_zone",
    "delete_zones": "dns.delete_zone",
    "add_rpz_rules": "dns.add_rpzrule",
    "delete_rpz_rules": "dns.delete_rpzrule",
    "view_rpz_rules": "dns.view_rpzrule",
    "view_feeds": "dns.view_threatfeed",
    "view_forwarders": "dns.view_forwarder",
    "view_audit": "audit.view_auditlog",
    "view_sigma_rules": "incidents.view_sigmarule",
    "add_sigma_rules": "incidents.add_sigmarule",
    "change_sigma_rules": "incidents.change_sigmarule",
    "publish_events": "realtime.publish_event",
}


def permission_flags(user):
    granted = user.get_all_permissions()
    return {flag: user.is_superuser or name in granted for flag, name in PERMISSION_FLAGS.items()}


def _transitions(table):
    return {str(old): sorted(str(new) for new in news) for old, news in table.items()}


def navigation(flags):
    """The page links this user may open, in menu order."""
    items = [("overview", "Overview", "/")]
    if flags["receive_security"]:
        items.append(("events", "Events", "/events/"))
    if flags["view_alerts"]:
        items.append(("alerts", "Alerts", "/alerts/"))
    if flags["view_incidents"]:
        items.append(("incidents", "Incidents", "/incidents/"))
    if flags["view_zones"]:
        items.append(("dns", "DNS", "/dns/"))
    if flags["view_sigma_rules"]:
        items.append(("rules", "Rules", "/rules/"))
    if flags["view_audit"]:
        items.append(("audit", "Audit", "/audit/"))
    return [{"page": page, "label": label, "url": url} for page, label, url in items]


@method_decorator(ensure_csrf_cookie, name="dispatch")
class Page(LoginRequiredMixin, TemplateView):
    """A page of the console. `page` names it (navigation, socket client id, script);
    `permission` is needed to open it."""

    page = ""
    permission = None
    title = ""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if self.permission and not request.user.has_perm(self.permission):
            return render(
                request,
                "ui/forbidden.html",
                self.shell_context(title="Not permitted"),
                status=403,
            )
        return super().dispatch(request, *args, **kwargs)

    def shell_context(self, **extra):
        user = self.request.user
        flags = permission_flags(user)
        return {
            "page": self.page,
            "title": extra.pop("title", self.title),
            "nav": navigation(flags),
            "role": role_of(user) or "no role",
            "display_name": user.get_full_name() or user.get_username(),
            "is_staff": user.is_staff,
            "flags": flags,
            **extra,
        }

    def page_config(self):
        """Extra configuration for the page's script."""
        return {}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(self.shell_context())
        user = self.request.user
        context["config"] = {
            "page": self.page,
            "user": {
                "id": user.pk,
                "username": user.get_username(),
                "display_name": context["display_name"],
                "role": role_of(user),
            },
            "perms": context["flags"],
            **self.page_config(),
        }
        return context


class OverviewPage(Page):
    page = "overview"
    title = "Overview"
    template_name = "ui/overview.html"


class EventsPage(Page):
    page = "events"
    title = "Security events"
    permission = "realtime.receive_security"
    template_name = "ui/events.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "severity_range": range(1, 11)}


class AlertsPage(Page):
    page = "alerts"
    title = "Alert queue"
    permission = "incidents.view_alert"
    template_name = "ui/alerts.html"

    def page_config(self):
        return {
            "alert_transitions": _transitions(ALERT_TRANSITIONS),
            "alert_statuses": {str(value): str(label) for value, label in AlertStatus.choices},
        }


class IncidentsPage(Page):
    page = "incidents"
    title = "Incidents"
    permission = "incidents.view_incident"
    template_name = "ui/incidents.html"

    def page_config(self):
        return {
            "incident_statuses": {
                str(value): str(label) for value, label in IncidentStatus.choices
            },
            "default_view": self.default_view(),
        }

    def default_view(self):
        """`mine` for someone who owns an open incident, else `all` (an admin or a new
        analyst would otherwise land on an empty list)."""
        user = self.request.user
        owns = Incident.objects.filter(owner=user, status__in=OPEN_INCIDENT_STATUSES).exists()
        return "mine" if owns else "all"


class IncidentDetailPage(IncidentsPage):
    title = "Incident"
    template_name = "ui/incident_detail.html"

    def get(self, request, *args, **kwargs):
        # An incident this user may not see is "not found", as the API says: the page
        # shows no alerts table and no Watch button for it.
        if not Incident.objects.visible_to(request.user).filter(pk=kwargs["pk"]).exists():
            return render(
                request,
                "ui/not_found.html",
                self.shell_context(
                    title="Incident not found",
                    message=f"There is no incident {kwargs['pk']} that you may see.",
                    back_url="/incidents/",
                    back_label="Back to the incidents",
                ),
                status=404,
            )
        return super().get(request, *args, **kwargs)

    def page_config(self):
        return {
            **super().page_config(),
            "incident_id": self.kwargs["pk"],
            "watching": IncidentWatcher.objects.filter(
                incident_id=self.kwargs["pk"], user=self.request.user
            ).exists(),
            "incident_transitions": _transitions(INCIDENT_TRANSITIONS),
            "alert_statuses": {str(value): str(label) for value, label in AlertStatus.choices},
        }


class DnsPage(Page):
    """Zones and their records. Whether the user may change a zone comes with each zone
    from the zone API (`can_change`), so a grant made while the page is open counts."""

    page = "dns"
    title = "DNS"
    permission = "dns.view_zone"
    template_name = "ui/dns.html"
    section = "zones"

    def page_config(self):
        return {
            "record_types": [str(value) for value, _ in Record.RecordType.choices],
            "zone_types": [str(value) for value, _ in Zone.ZoneType.choices],
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        flags = context["flags"]
        tabs = [("zones", "Zones", "/dns/", flags["view_zones"])]
        tabs.append(("rpz", "RPZ rules", "/dns/rpz/", flags["view_rpz_rules"]))
        tabs.append(("feeds", "Threat feeds", "/dns/feeds/", flags["view_feeds"]))
        tabs.append(("forwarders", "Forwarders", "/dns/forwarders/", flags["view_forwarders"]))
        context["dns_tabs"] = [
            {"section": section, "label": label, "url": url}
            for section, label, url, allowed in tabs
            if allowed
        ]
        context["dns_section"] = self.section
        return context


class RpzPage(DnsPage):
    """Response policy rules, live, with add and remove."""

    title = "RPZ rules"
    permission = "dns.view_rpzrule"
    template_name = "ui/dns_rpz.html"
    section = "rpz"

    def page_config(self):
        return {
            "rpz_actions": [str(value) for value, _ in RpzRule.Action.choices],
            "rpz_categories": [str(value) for value, _ in RpzRule.Category.choices],
        }


class FeedsPage(DnsPage):
    """Threat feeds and the state of their last download, live."""

    title = "Threat feeds"
    permission = "dns.view_threatfeed"
    template_name = "ui/dns_feeds.html"
    section = "feeds"

    def page_config(self):
        return {}


class ForwardersPage(DnsPage):
    """Forwarders and their health from the DNS monitors' probes, live."""

    title = "Forwarders"
    permission = "dns.view_forwarder"
    template_name = "ui/dns_forwarders.html"
    section = "forwarders"

    def page_config(self):
        return {}


class RulesPage(Page):
    """Sigma rules: their state and cost, ATT&CK techniques, enable/disable, upload, and
    the coverage layer (docs/sigma.md)."""

    page = "rules"
    title = "Detection rules"
    permission = "incidents.view_sigmarule"
    template_name = "ui/rules.html"


class CoveragePage(Page):
    """The ATT&CK techniques the enabled Sigma rules cover, by tactic, and the Navigator
    layer download (docs/sigma.md)."""

    page = "rules"  # a view of the rules: the navigation marks Rules
    title = "ATT&CK coverage"
    permission = "incidents.view_sigmarule"
    template_name = "ui/coverage.html"


class AuditPage(Page):
    page = "audit"
    title = "Audit log"
    permission = "audit.view_auditlog"
    template_name = "ui/audit.html"


class SearchPage(Page):
    """Results of the header's search box (`/search/?q=...`), from `/api/search/`."""

    page = "search"
    title = "Search"
    template_name = "ui/search.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "q": self.request.GET.get("q", "")}


class PivotPage(Page):
    """Everything about one IP, user, host or domain (`/pivot/?type=ip&value=...`)."""

    page = "pivot"
    title = "Pivot"
    template_name = "ui/pivot.html"

    def page_config(self):
        return {
            "pivot": {
                "type": self.request.GET.get("type", ""),
                "value": self.request.GET.get("value", ""),
            }
        }


class LoginForm(AuthenticationForm):
    """Django's login form, saying plainly when failed logins are throttled (the backend
    refuses throttled attempts, which the stock form reports as a wrong password)."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is not None:
            throttled = throttling.check(username, request_address(self.request))
            if throttled:
                raise ValidationError(
                    "Too many failed login attempts. Try again in %(seconds)s s.",
                    code="throttled",
                    params={"seconds": throttled.retry_after},
                )
        return super().clean()


class LoginView(auth_views.LoginView):
    template_name = "ui/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5); says so on the login page it redirects to."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response
