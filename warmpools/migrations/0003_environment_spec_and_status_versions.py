"""Environments get a spec (desired_phase, spec_version) beside their status (phase,
status_version), like prebuilds and pools, and an updated_at that every versioned write sets."""

from django.db import migrations, models
from django.db.models import F

# How many status writes each phase implies (created CREATING at 1; READY or FAILED; then DELETING,
# then DELETED): existing rows continue from there.
STATUS_VERSIONS = {"creating": 1, "ready": 2, "failed": 2, "deleting": 3, "deleted": 4}


def versions_for_existing_rows(apps, schema_editor):
    Environment = apps.get_model("warmpools", "Environment")
    for phase, version in STATUS_VERSIONS.items():
        Environment.objects.filter(phase=phase).update(status_version=version)
    # A row being deleted (or deleted) was asked to be: its spec says so, one write after the create.
    Environment.objects.filter(phase__in=["deleting", "deleted"]).update(desired_phase="deleted", spec_version=2)
    Environment.objects.update(updated_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("warmpools", "0002_instances_and_environments"),
    ]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="desired_phase",
            field=models.CharField(
                choices=[
                    ("creating", "Creating"),
                    ("ready", "Ready"),
                    ("failed", "Failed"),
                    ("deleting", "Deleting"),
                    ("deleted", "Deleted"),
                ],
                default="ready",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="spec_version",
            field=models.BigIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="environment",
            name="status_version",
            field=models.BigIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="environment",
            name="updated_at",
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.RunPython(versions_for_existing_rows, migrations.RunPython.noop),
    ]
