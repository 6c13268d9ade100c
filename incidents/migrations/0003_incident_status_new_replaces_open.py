"""The first incident status is `new` (the incident frontends' and TheHive's name), not
`open`: existing rows are renamed; `open` stays accepted on input (docs/migrating.md)."""

from django.db import migrations, models


def open_to_new(apps, schema_editor):
    apps.get_model("incidents", "Incident").objects.filter(status="open").update(status="new")


def new_to_open(apps, schema_editor):
    apps.get_model("incidents", "Incident").objects.filter(status="new").update(status="open")


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_rawlog_securityevent"),
    ]

    operations = [
        migrations.AlterField(
            model_name="incident",
            name="status",
            field=models.CharField(
                choices=[
                    ("new", "New"),
                    ("investigating", "Investigating"),
                    ("contained", "Contained"),
                    ("resolved", "Resolved"),
                    ("closed", "Closed"),
                ],
                db_index=True,
                default="new",
                max_length=20,
            ),
        ),
        migrations.RunPython(open_to_new, new_to_open, elidable=True),
    ]
