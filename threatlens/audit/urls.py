from django.urls import path

from threatlens.audit import views

urlpatterns = [
    path("", views.AuditLogListView.as_view(), name="audit-list"),
    path("export.csv", views.AuditLogExportView.as_view(), name="audit-export"),
]
