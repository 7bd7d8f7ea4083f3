"""As sending 0010: no foreign-key constraint from events to the tenant (instant DROP CONSTRAINT)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0002_tenant_compliance'),
        ('webhooks', '0002_fewer_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
    ]
