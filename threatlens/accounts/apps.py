from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "threatlens.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from threatlens.accounts import events, signals  # noqa: F401
