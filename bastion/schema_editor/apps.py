from django.apps import AppConfig


class SchemaEditorConfig(AppConfig):
    name = "bastion.schema_editor"
    label = "schema_editor"
    verbose_name = "Schema editor"
