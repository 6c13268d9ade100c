from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "threatlens.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from threatlens import logredaction
        from threatlens.accounts import events, signals  # noqa: F401

        logredaction.install()  # management commands and test servers log too
