"""The role groups admin, analyst and viewer, with the permissions that exist so far.

Permissions of apps migrated later (and, on a fresh database, all of them: Django creates
permission rows after the last migration) are granted by the post_migrate receiver in
threatlens.accounts.signals, with the same function.
"""

from django.db import migrations


def create_roles(apps, schema_editor):
    from threatlens.accounts.roles import grant_role_permissions

    grant_role_permissions(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
