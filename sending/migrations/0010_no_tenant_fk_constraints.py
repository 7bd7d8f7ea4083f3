"""No foreign-key constraints from the per-message tables to the tenant and the credential:
each INSERT locked the tenant row FOR KEY SHARE (see Message.tenant). Each step is a DROP
CONSTRAINT: instant, whatever the size of the tables."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sending', '0009_fewer_indexes'),
        ('tenants', '0002_tenant_compliance'),
    ]

    operations = [
        migrations.AlterField(
            model_name='deliveryattempt',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
        migrations.AlterField(
            model_name='message',
            name='credential',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.credential'),
        ),
        migrations.AlterField(
            model_name='message',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
        migrations.AlterField(
            model_name='recipient',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
    ]
