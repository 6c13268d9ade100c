from django.urls import path

from realtime import views

urlpatterns = [
    path("realtime/status", views.realtime_status, name="realtime-status"),
    path("ws/info", views.ConnectionsInfoView.as_view(), name="ws-info"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
]
