"""Remember which role defaults were offered, so `migrate` stops re-granting removed ones.

Every permission a role's defaults match today counts as offered already: until now each
`migrate` granted them all, so from here on only permissions that appear later are granted.
"""

import django.db.models.deletion
from django.db import migrations, models


def offer_current_defaults(apps, schema_editor):
    from threatlens.accounts.roles import ROLES, permissions_for_role

    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Offered = apps.get_model("accounts", "OfferedRolePermission")
    by_name = {
        f"{p.content_type.app_label}.{p.codename}": p.pk
        for p in Permission.objects.using(using).select_related("content_type")
    }
    for group in Group.objects.using(using).filter(name__in=ROLES):
        wanted = sorted(by_name[name] for name in permissions_for_role(group.name, by_name))
        Offered.objects.using(using).bulk_create(
            [Offered(group_id=group.pk, permission_id=pk) for pk in wanted],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_roles'),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.CreateModel(
            name='OfferedRolePermission',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('offered_at', models.DateTimeField(auto_now_add=True)),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='auth.group')),
                ('permission', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='auth.permission')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('group', 'permission'), name='accounts_offered_role_permission_unique')],
            },
        ),
        migrations.RunPython(offer_current_defaults, migrations.RunPython.noop),
    ]
