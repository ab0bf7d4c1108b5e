"""The structure page's forms: one small form per kind of change, each turned into an ``alterations`` change.

Choices (columns, indexes, foreign keys, tables) come from what the user may see
(``alter_checks.Structure``), so a hidden column cannot even be chosen; the service checks
everything again against the live table.
"""

from __future__ import annotations

from typing import Any

from django import forms

from bastion.schema_editor import alterations, column_types
from bastion.schema_editor.alter_checks import Structure
from bastion.schema_editor.alterations import Change
from bastion.schema_editor.definition import REFERENTIAL_ACTIONS
from bastion.schema_editor.forms import ColumnForm, name_field
from bastion.schema_editor.identifiers import MYSQL_MAX_CHARACTERS, POSTGRESQL_MAX_BYTES

INDEX_COLUMNS = 4  # column choices an index form offers
KEEP, SET, NONE = "keep", "set", "none"


def generated_name(prefix: str, parts: list[str], dialect: str) -> str:
    """A name for a new index or foreign key, cut to what the engine keeps (PostgreSQL: 63 bytes)."""
    name = "_".join([prefix, *parts])
    if dialect == "mysql":
        return name[:MYSQL_MAX_CHARACTERS].rstrip(" ")
    if dialect == "postgresql":
        while len(name.encode("utf-8")) > POSTGRESQL_MAX_BYTES:
            name = name[:-1]
    return name


class ChangeForm(forms.Form):
    """A form for one kind of change; ``change()`` gives it once the form is valid."""

    op = ""  # the value of the submit's "op" field
    title = ""

    def __init__(self, *args: Any, structure: Structure, dialect: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix=self.op, **kwargs)
        self.structure = structure
        self.dialect = dialect

    def column_choices(self) -> list[tuple[str, str]]:
        return [("", "—"), *((name, name) for name in self.structure.columns)]

    def change(self) -> Change:
        raise NotImplementedError


class AddColumnForm(ChangeForm):
    op, title = "add_column", "Add a column"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = ColumnForm(dialect=self.dialect)
        for name in ("name", "type", "size", "nullable", "default"):
            self.fields[name] = inner.fields[name]
        self.fields["nullable"].initial = True

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            data["sizes"] = column_types.parse_size(data["type"], data.get("size", ""))
        except ValueError as exc:
            self.add_error("size", str(exc))
        return data

    def change(self) -> Change:
        return alterations.AddColumn(ColumnForm.spec(self.cleaned_data))


class RenameColumnForm(ChangeForm):
    op, title = "rename_column", "Rename a column"
    column = forms.ChoiceField(label="Column")
    new_name = name_field("New name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = self.column_choices()

    def change(self) -> Change:
        return alterations.RenameColumn(self.cleaned_data["column"], self.cleaned_data["new_name"])


class DropColumnForm(ChangeForm):
    op, title = "drop_column", "Drop a column"
    column = forms.ChoiceField(label="Column")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = self.column_choices()

    def change(self) -> Change:
        return alterations.DropColumn(self.cleaned_data["column"])


class AlterColumnForm(ChangeForm):
    op, title = "alter_column", "Change a column's type, NULL or default"
    column = forms.ChoiceField(label="Column")
    type = forms.ChoiceField(label="New type", required=False)
    size = forms.CharField(label="Size", required=False, max_length=40,
                           widget=forms.TextInput(attrs={"class": "size", "autocomplete": "off",
                                                         "placeholder": "255 · 12,2"}))
    nullable = forms.ChoiceField(label="NULL", choices=[(KEEP, "keep as it is"), ("allow", "allow NULL"),
                                                        ("forbid", "NOT NULL")], initial=KEEP)
    default_mode = forms.ChoiceField(label="Default", choices=[(KEEP, "keep as it is"), (NONE, "no default"),
                                                               (SET, "set to the value below")], initial=KEEP)
    default = forms.CharField(label="New default", required=False, strip=False, max_length=10_000,
                              widget=forms.TextInput(attrs={"autocomplete": "off"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = self.column_choices()
        self.fields["type"].choices = [("", "keep the type"), *column_types.type_choices(self.dialect)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if data.get("type"):
            try:
                data["sizes"] = column_types.parse_size(data["type"], data.get("size", ""))
            except ValueError as exc:
                self.add_error("size", str(exc))
        elif data.get("size"):
            self.add_error("size", "A size goes with a new type: choose the type too.")
        return data

    def change(self) -> Change:
        data = self.cleaned_data
        nullable = {KEEP: None, "allow": True, "forbid": False}[data["nullable"]]
        default = {KEEP: alterations.KEEP, NONE: None, SET: data.get("default", "")}[data["default_mode"]]
        return alterations.AlterColumn(data["column"], data.get("type", ""),
                                       data.get("sizes", column_types.Sizes()), nullable, default)


class RenameTableForm(ChangeForm):
    op, title = "rename_table", "Rename the table"
    new_name = name_field("New name")

    def change(self) -> Change:
        return alterations.RenameTable(self.cleaned_data["new_name"])


class AddIndexForm(ChangeForm):
    op, title = "add_index", "Add an index"
    name = forms.CharField(label="Index name", required=False, strip=False, max_length=255,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "generated"}))
    unique = forms.BooleanField(label="Unique", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for number in range(1, INDEX_COLUMNS + 1):
            self.fields[f"column_{number}"] = forms.ChoiceField(
                label=f"Column {number}", required=number == 1, choices=self.column_choices())

    def index_columns(self) -> list[str]:
        return [self.cleaned_data[f"column_{n}"] for n in range(1, INDEX_COLUMNS + 1)
                if self.cleaned_data.get(f"column_{n}")]

    def change(self) -> Change:
        columns = self.index_columns()
        name = self.cleaned_data.get("name") or generated_name(
            "ux" if self.cleaned_data.get("unique") else "ix", [self.structure.info.name, *columns],
            self.dialect.name)
        return alterations.AddIndex(name, tuple(columns), bool(self.cleaned_data.get("unique")))


class DropIndexForm(ChangeForm):
    op, title = "drop_index", "Drop an index"
    index = forms.ChoiceField(label="Index")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["index"].choices = [("", "—"), *((i.name, i.name) for i in self.structure.indexes)]

    def change(self) -> Change:
        return alterations.DropIndex(self.cleaned_data["index"])


class AddForeignKeyForm(ChangeForm):
    op, title = "add_foreign_key", "Add a foreign key"
    column = forms.ChoiceField(label="Column")
    referred_table = forms.ChoiceField(label="Refers to table")
    referred_column = forms.CharField(label="Its column", required=False, strip=False, max_length=255,
                                      widget=forms.TextInput(attrs={"autocomplete": "off",
                                                                    "placeholder": "primary key"}))
    on_delete = forms.ChoiceField(label="On delete", choices=list(REFERENTIAL_ACTIONS.items()), required=False)
    on_update = forms.ChoiceField(label="On update", choices=list(REFERENTIAL_ACTIONS.items()), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = self.column_choices()
        self.fields["referred_table"].choices = [("", "—"),
                                                 *((n, n) for n in self.structure.referable_tables)]

    def change(self) -> Change:
        data = self.cleaned_data
        name = generated_name("fk", [self.structure.info.name, data["column"], data["referred_table"]],
                              self.dialect.name)
        return alterations.AddForeignKey(name, data["column"], None, data["referred_table"],
                                         data.get("referred_column", ""), data.get("on_delete", ""),
                                         data.get("on_update", ""))


class DropForeignKeyForm(ChangeForm):
    op, title = "drop_foreign_key", "Drop a foreign key"
    key = forms.ChoiceField(label="Foreign key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", "—"), *((str(fk.number), _key_label(fk))
                                                   for fk in self.structure.foreign_keys)]

    def change(self) -> Change:
        number = int(self.cleaned_data["key"])
        fk = next(fk for fk in self.structure.foreign_keys if fk.number == number)
        return alterations.DropForeignKey(fk.name, fk.columns, fk.referred_table)


def _key_label(fk: Any) -> str:
    label = f"({', '.join(fk.columns)}) → {fk.referred_table} ({', '.join(fk.referred_columns)})"
    return f"{fk.name}: {label}" if fk.name else label


FORMS: tuple[type[ChangeForm], ...] = (AddColumnForm, AlterColumnForm, RenameColumnForm, DropColumnForm,
                                       AddIndexForm, DropIndexForm, AddForeignKeyForm, DropForeignKeyForm,
                                       RenameTableForm)
BY_OP = {form.op: form for form in FORMS}
