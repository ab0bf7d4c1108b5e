"""The new-table form: the table's name, a formset of column rows and a formset of foreign key rows.

Rows are added without JavaScript by a submit button that re-renders the form with
more empty rows (``NewTableForm.with_more_rows``); empty rows are ignored, and a
row's "Remove" box drops it. Each field is checked here for the engine at hand
(messages beside the field); the service checks the whole definition again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict

from bastion.schema_editor import column_types
from bastion.schema_editor.column_types import DEFAULT_TYPE, Sizes
from bastion.schema_editor.definition import (
    MAX_COLUMNS,
    MAX_FOREIGN_KEYS,
    REFERENTIAL_ACTIONS,
    ColumnSpec,
    ForeignKeySpec,
    TableSpec,
    column_problems,
)
from bastion.schema_editor.identifiers import MAX_NAME_CHARACTERS, name_problem

MAX_DEFAULT_CHARACTERS = 10_000
COLUMN_ROWS, KEY_ROWS = 4, 1  # empty rows on a new form
MORE_ROWS = 3  # rows a "More ..." button adds
COLUMNS_PREFIX, KEYS_PREFIX = "columns", "keys"


def name_field(label: str) -> forms.CharField:
    # Not stripped: spaces are part of a name the engine accepts; rules per engine in identifiers.py.
    return forms.CharField(label=label, strip=False, max_length=MAX_NAME_CHARACTERS,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))


class TableNameForm(forms.Form):
    name = name_field("Table name")

    def __init__(self, *args: Any, dialect: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialect = dialect

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        problem = name_problem(name, self.dialect, table=True)
        if problem:
            raise forms.ValidationError(problem)
        return name


class ColumnForm(forms.Form):
    name = name_field("Name")
    type = forms.ChoiceField(label="Type", initial=DEFAULT_TYPE)
    size = forms.CharField(label="Size", required=False, max_length=40,
                           widget=forms.TextInput(attrs={"class": "size", "autocomplete": "off",
                                                         "placeholder": "255 · 12,2"}))
    nullable = forms.BooleanField(label="NULL", required=False)
    default = forms.CharField(label="Default", required=False, strip=False, max_length=MAX_DEFAULT_CHARACTERS,
                              widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "none"}))
    unique = forms.BooleanField(label="Unique", required=False)
    primary_key = forms.BooleanField(label="Primary key", required=False)
    autoincrement = forms.BooleanField(label="Autoincrement", required=False)

    def __init__(self, *args: Any, dialect: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialect = dialect.name
        self.fields["type"].choices = column_types.type_choices(dialect)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        problem = name_problem(name, self.dialect, table=False)
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors or data.get("DELETE"):
            return data
        try:
            data["sizes"] = column_types.parse_size(data["type"], data.get("size", ""))
        except ValueError as exc:
            self.add_error("size", str(exc))
            return data
        for problem in column_problems(self.spec(data), self.dialect):  # the name passed clean_name
            self.add_error(None, problem)
        return data

    @staticmethod
    def spec(data: dict[str, Any]) -> ColumnSpec:
        default = data.get("default", "")
        return ColumnSpec(
            name=data["name"], type=data["type"], sizes=data.get("sizes", Sizes()),
            nullable=bool(data.get("nullable")), default=default if default != "" else None,
            unique=bool(data.get("unique")), primary_key=bool(data.get("primary_key")),
            autoincrement=bool(data.get("autoincrement")))


class ForeignKeyForm(forms.Form):
    column = name_field("Column")
    referred_table = forms.ChoiceField(label="Refers to table")
    referred_column = forms.CharField(label="Its column", required=False, strip=False,
                                      max_length=MAX_NAME_CHARACTERS,
                                      widget=forms.TextInput(attrs={"autocomplete": "off",
                                                                    "placeholder": "primary key"}))
    on_delete = forms.ChoiceField(label="On delete", choices=list(REFERENTIAL_ACTIONS.items()), required=False)
    on_update = forms.ChoiceField(label="On update", choices=list(REFERENTIAL_ACTIONS.items()), required=False)

    def __init__(self, *args: Any, tables: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].widget.attrs["list"] = "new-table-columns"
        self.fields["referred_table"].choices = [("", "—"), *((name, name) for name in tables)]

    def spec(self) -> ForeignKeySpec:
        data = self.cleaned_data
        return ForeignKeySpec(column=data["column"], referred_table=data["referred_table"],
                              referred_column=data.get("referred_column", ""),
                              on_delete=data.get("on_delete", ""), on_update=data.get("on_update", ""))


ColumnFormSet = forms.formset_factory(ColumnForm, extra=COLUMN_ROWS, can_delete=True, max_num=MAX_COLUMNS,
                                      absolute_max=MAX_COLUMNS, validate_max=True)
ForeignKeyFormSet = forms.formset_factory(ForeignKeyForm, extra=KEY_ROWS, can_delete=True,
                                          max_num=MAX_FOREIGN_KEYS, absolute_max=MAX_FOREIGN_KEYS,
                                          validate_max=True)


class NewTableForm:
    """The three parts of the form, bound or not, validated together."""

    def __init__(self, data: QueryDict | None, *, dialect: Any, tables: list[str]) -> None:
        self.data = data
        self.table = TableNameForm(data, dialect=dialect.name)
        self.columns = ColumnFormSet(data, prefix=COLUMNS_PREFIX, form_kwargs={"dialect": dialect})
        self.keys = ForeignKeyFormSet(data, prefix=KEYS_PREFIX, form_kwargs={"tables": tables})

    @classmethod
    def with_more_rows(cls, data: QueryDict, which: str, *, dialect: Any, tables: list[str]) -> NewTableForm:
        """The posted form again with MORE_ROWS more empty rows of ``which`` (a prefix), nothing else changed."""
        data = data.copy()
        field, limit = f"{which}-TOTAL_FORMS", MAX_COLUMNS if which == COLUMNS_PREFIX else MAX_FOREIGN_KEYS
        try:
            total = int(data.get(field, "0"))
        except ValueError:
            total = 0
        data[field] = str(max(0, min(total + MORE_ROWS, limit)))
        return cls(data, dialect=dialect, tables=tables)

    def is_valid(self) -> bool:
        return all([self.table.is_valid(), self.columns.is_valid(), self.keys.is_valid()])

    @property
    def has_errors(self) -> bool:
        return self.data is not None and not self.is_valid()

    def _kept(self, formset: forms.BaseFormSet) -> list[forms.Form]:
        return [f for f in formset.forms
                if f.has_changed() and f.is_valid() and not f.cleaned_data.get("DELETE")]

    def spec(self, schema: str | None) -> TableSpec:
        """The definition the valid form describes (rows left empty or removed are not part of it)."""
        return TableSpec(
            schema=schema, name=self.table.cleaned_data["name"],
            columns=tuple(ColumnForm.spec(f.cleaned_data) for f in self._kept(self.columns)),
            foreign_keys=tuple(f.spec() for f in self._kept(self.keys)))

    def column_names(self) -> list[str]:
        """Names typed in the column rows so far (for the foreign key rows' suggestions)."""
        if self.data is None:
            return []
        names = []
        for form in self.columns.forms:
            value = form["name"].value()
            if value and value not in names:
                names.append(str(value))
        return names
