from django.db import migrations, models


def admin_requires_mfa(apps, schema_editor):
    """Existing installations get the new default too: the Admin role requires a second factor."""
    RoleOptions = apps.get_model("access", "RoleOptions")
    RoleOptions.objects.filter(role__name="Admin").update(require_mfa=True)


class Migration(migrations.Migration):
    dependencies = [("access", "0002_roleoptions_two_person_rule")]

    operations = [
        migrations.AddField(model_name="roleoptions", name="require_mfa", field=models.BooleanField(default=False)),
        migrations.RunPython(admin_requires_mfa, migrations.RunPython.noop),
    ]
