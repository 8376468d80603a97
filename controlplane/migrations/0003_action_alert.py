# Action.alert lives in its own migration so that anomaly.0001 (which builds on controlplane.0002) and this
# migration (which needs anomaly.Alert) do not form a cycle.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("anomaly", "0001_initial"),
        ("controlplane", "0002_routing"),
    ]

    operations = [
        migrations.AddField(
            model_name="action",
            name="alert",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="routing_actions", to="anomaly.alert"),
        ),
    ]
