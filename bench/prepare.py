"""Prepare the benchmark's database: migrate, then create the publisher and the client users.

    python -m bench.prepare '{"users": 1, "password": "...", "prefix": "bench"}'

Run with the servers' environment (DATABASE_URL, SECRET_KEY, ...). Prints one JSON line:
`{"publisher": "<name>", "clients": ["<name>", ...]}`. The publisher is an admin (it holds
`realtime.publish_event`); clients are viewers, who may receive `system` events such as
`config_change`. Existing users of the same names are updated (new password), so a run
against a kept PostgreSQL database works too.
"""

import json
import os
import sys


def main():
    config = json.loads(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from threatlens.accounts.services import create_or_update_user

    call_command("migrate", interactive=False, verbosity=0)
    prefix, password = config["prefix"], config["password"]
    publisher = f"{prefix}_publisher"
    create_or_update_user(publisher, role="admin", password=password)
    clients = [f"{prefix}_client_{index}" for index in range(config["users"])]
    for name in clients:
        create_or_update_user(name, role=config.get("role", "viewer"), password=password)
    print(json.dumps({"publisher": publisher, "clients": clients}))


if __name__ == "__main__":
    main()
