from django.db import migrations


def strip_signatures(apps, schema_editor):
    """Refresh tokens stored before tokens were kept unsigned (tenants/apps.py)."""
    from tenants.apps import unsigned_token

    OutstandingToken = apps.get_model("token_blacklist", "OutstandingToken")
    for row in OutstandingToken.objects.only("token").iterator():
        stripped = unsigned_token(row.token)
        if stripped != row.token:
            OutstandingToken.objects.filter(pk=row.pk).update(token=stripped)


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0002_tenant_compliance"),
        ("token_blacklist", "0013_alter_blacklistedtoken_options_and_more"),
    ]

    operations = [migrations.RunPython(strip_signatures, migrations.RunPython.noop)]
