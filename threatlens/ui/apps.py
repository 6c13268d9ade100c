from django.apps import AppConfig


class UiConfig(AppConfig):
    name = "threatlens.ui"
    label = "ui"
    verbose_name = "Analyst UI"
