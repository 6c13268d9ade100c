"""manage.py ensure_admin: a first admin account when there is none (used by `make run`)."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db.models import Q

from threatlens.accounts.roles import ADMIN
from threatlens.accounts.services import create_or_update_user
from threatlens.audit.context import audit_context
from threatlens.env import env_int, env_str

USERNAME = "admin"


def active_admins():
    """Active users who are admins: in the admin group, or superusers."""
    return get_user_model()._default_manager.filter(
        Q(groups__name=ADMIN) | Q(is_superuser=True), is_active=True
    )


class Command(BaseCommand):
    help = (
        "When no active admin exists, create (or reactivate) the user 'admin' with a "
        "generated password and print it once. Otherwise do nothing."
    )

    def handle(self, *args, **options):
        existing = active_admins().order_by("pk").first()
        if existing is not None:
            self.stdout.write(f"An admin exists ({existing.get_username()}); nothing to do.")
            return
        password = secrets.token_urlsafe(18)
        with audit_context(source="manage.py ensure_admin"):
            _, created = create_or_update_user(
                USERNAME, role=ADMIN, password=password, is_active=True
            )
        host = env_str("HOST", "127.0.0.1")
        port = env_int("PORT", 8000, minimum=1, maximum=65535)
        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} the admin account '{USERNAME}'.")
            + f"\n  username: {USERNAME}\n  password: {password}\n"
            f"Log in at http://{host}:{port}/ (Django admin: http://{host}:{port}/admin/).\n"
            "This password is shown only once: keep it, or set another with\n"
            f"  python manage.py create_user {USERNAME} --role admin --password-stdin"
        )
