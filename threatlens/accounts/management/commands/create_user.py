"""manage.py create_user NAME --role ROLE (--password PW | --password-stdin) [--email EMAIL]"""

import sys

from django.core.management.base import BaseCommand, CommandError

from threatlens.accounts.roles import ROLES
from threatlens.accounts.services import AccountError, create_or_update_user
from threatlens.audit.context import audit_context


class Command(BaseCommand):
    help = (
        "Create a user, or update an existing one, with a role (admin, analyst or viewer) "
        "and a password. Other role groups of the user are removed; admins are staff."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", help=f"One of: {', '.join(ROLES)}.")
        parser.add_argument("--password", help="The password (visible in the process list).")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input.",
        )
        parser.add_argument("--email", help="Email address (kept when omitted).")

    def handle(self, *args, username, role, password, password_stdin, email, **options):
        if role is None:
            raise CommandError(f"--role is required: one of {', '.join(ROLES)}.")
        if role not in ROLES:
            raise CommandError(f"Unknown role {role!r}: expected one of {', '.join(ROLES)}.")
        if password is not None and password_stdin:
            raise CommandError("Give either --password or --password-stdin, not both.")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError(
                "A password is required: --password PW, or --password-stdin to read it."
            )
        try:
            with audit_context(source="manage.py create_user"):
                user, created = create_or_update_user(
                    username, role=role, password=password, email=email
                )
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} user {username!r} with role {role}."))
        if not user.is_active:
            self.stderr.write(f"Note: {username!r} is inactive; activate it in the admin.")
