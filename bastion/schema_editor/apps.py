from django.apps import AppConfig


class SchemaEditorConfig(AppConfig):
    name = "bastion.schema_editor"
    label = "schema_editor"
    verbose_name = "Schema editor"

    def ready(self) -> None:
        # The column-drop executor of the two-person rule registers itself when alter_approval is imported.
        from bastion.schema_editor import alter_approval  # noqa: F401
