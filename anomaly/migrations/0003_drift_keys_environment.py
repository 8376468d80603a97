import hashlib
import json

from django.db import migrations

# Drift and canary series keys gained "environment" (the drift jobs group samples by the sweep's route × version key
# columns now). 0002 already gave every alert with a "grouping" key environment "", drift and canary ones included;
# this catches the drift/canary alerts (and detections) the environment-less drift jobs stored after 0002 ran, so
# they keep matching what the drift jobs produce for traffic without a deployment.environment. Alerts of traffic
# that does have one are resolved by the next drift run ("series split by environment") once the per-environment
# alert has joined their incident. The fingerprint material is the one ``anomaly.alerts.fingerprint`` hashes,
# spelled out so later changes to that function do not alter history.

DRIFT_KINDS = ("drift", "canary")


def _fingerprint(tenant_id, detector, series_key):
    material = json.dumps([tenant_id, detector, sorted(series_key.items())], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def add_environment(apps, schema_editor):
    Alert = apps.get_model("anomaly", "Alert")
    Detection = apps.get_model("anomaly", "Detection")
    for alert in Alert.objects.filter(detector__in=DRIFT_KINDS).select_related("project").iterator():
        key = dict(alert.series_key or {})
        if "grouping" not in key or "environment" in key:
            continue
        key["environment"] = ""
        alert.series_key = key
        alert.fingerprint = _fingerprint(alert.project.tenant_id, alert.detector, key)
        alert.save(update_fields=["series_key", "fingerprint"])
    for detection in Detection.objects.filter(detector__in=DRIFT_KINDS).iterator():
        key = dict(detection.series_key or {})
        if "grouping" in key and "environment" not in key:
            detection.series_key = {**key, "environment": ""}
            detection.save(update_fields=["series_key"])


class Migration(migrations.Migration):

    dependencies = [
        ("anomaly", "0002_error_type_kind_and_environment_keys"),
    ]

    # Reversing is 0002's reverse (it strips environment "" from every grouped key), so this step is a no-op back.
    operations = [migrations.RunPython(add_environment, migrations.RunPython.noop)]
