"""Snapshots of dropped tables (bastion.audit.models.TableSnapshot), append-only like the events (T34)."""

import django.db.models.deletion
from django.db import migrations, models

from bastion.audit import append_only

SQLITE = [
    """CREATE TRIGGER audit_snapshot_no_update BEFORE UPDATE ON audit_tablesnapshot
       BEGIN SELECT RAISE(ABORT, 'audit snapshots are append-only'); END""",
    """CREATE TRIGGER audit_snapshot_no_delete BEFORE DELETE ON audit_tablesnapshot
       BEGIN SELECT RAISE(ABORT, 'audit snapshots are append-only'); END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_snapshot_no_update",
    "DROP TRIGGER IF EXISTS audit_snapshot_no_delete",
]
# audit_event_append_only() is the function migration 0002 created for the events.
POSTGRESQL = [
    """CREATE TRIGGER audit_snapshot_no_change BEFORE UPDATE OR DELETE ON audit_tablesnapshot
       FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()""",
    """CREATE TRIGGER audit_snapshot_no_truncate BEFORE TRUNCATE ON audit_tablesnapshot
       FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()""",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_snapshot_no_truncate ON audit_tablesnapshot",
    "DROP TRIGGER IF EXISTS audit_snapshot_no_change ON audit_tablesnapshot",
]
STATEMENTS = {"sqlite": (SQLITE, SQLITE_REVERSE), "postgresql": (POSTGRESQL, POSTGRESQL_REVERSE)}
create_triggers, drop_triggers = append_only.operations(STATEMENTS)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0003_details_table_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="TableSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("dialect", models.CharField(max_length=16)),
                ("create_sql", models.TextField()),
                ("index_sql", models.JSONField(default=list)),
                ("finish_sql", models.JSONField(default=list)),
                ("columns", models.JSONField(default=list)),
                ("rows_kept", models.BooleanField(default=False)),
                ("reason", models.CharField(blank=True, max_length=200)),
                ("row_count", models.BigIntegerField(blank=True, null=True)),
                ("json_bytes", models.BigIntegerField(default=0)),
                ("data", models.BinaryField(blank=True, null=True)),
                ("sha256", models.CharField(blank=True, max_length=64)),
                ("definition_sha256", models.CharField(max_length=64)),
                ("event", models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name="snapshot",
                                               to="audit.auditevent")),
            ],
            options={
                "default_permissions": ("view",),
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
