from django.urls import path

from realtime import views

urlpatterns = [
    path("publish/", views.PublishView.as_view(), name="realtime-publish"),
    path("connections/disconnect/", views.DisconnectView.as_view(), name="realtime-disconnect"),
]
