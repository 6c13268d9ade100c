"""Pages of the analyst UI, at the site root."""

from django.urls import path

from threatlens.ui import views

app_name = "ui"

urlpatterns = [
    path("", views.OverviewPage.as_view(), name="overview"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("events/", views.EventsPage.as_view(), name="events"),
    path("alerts/", views.AlertsPage.as_view(), name="alerts"),
    path("incidents/", views.IncidentsPage.as_view(), name="incidents"),
    path("incidents/<int:pk>/", views.IncidentDetailPage.as_view(), name="incident"),
    path("dns/", views.DnsPage.as_view(), name="dns"),
    path("dns/rpz/", views.RpzPage.as_view(), name="dns-rpz"),
    path("dns/feeds/", views.FeedsPage.as_view(), name="dns-feeds"),
    path("dns/forwarders/", views.ForwardersPage.as_view(), name="dns-forwarders"),
    path("rules/", views.RulesPage.as_view(), name="rules"),
    path("rules/coverage/", views.CoveragePage.as_view(), name="coverage"),
    path("audit/", views.AuditPage.as_view(), name="audit"),
    path("search/", views.SearchPage.as_view(), name="search"),
    path("pivot/", views.PivotPage.as_view(), name="pivot"),
]
