"""Row forms generated from reflection: one typed field per column, with NULL and "use the default" boxes.

Field names are positional (``c0``, ``c1``... over the columns in the form), never
column names: those are arbitrary text and must not become HTML names or ids.
Hidden columns are not in the form at all (and leave no gap in the numbering);
columns the user may not write are shown disabled, masked ones with the masked
value, and Django ignores whatever a POST says about disabled fields. Values are
parsed with values.parse; changes.py re-checks every permission anyway.

Rules a user sees:
- a ticked "NULL" stores NULL; a ticked "use the default" (insert) leaves the column out;
  either one ticked together with a typed value is an error, never a silent choice;
- an empty text column stores the empty string; an empty field of any other kind
  stores NULL when the column allows it and is an error when it does not;
- on update, a field left as it was loaded is not written (so an odd value that does
  not parse, e.g. 'soon' in an SQLite DATE column, does not block editing the others),
  and a binary column keeps its value unless a file is uploaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from django import forms

from bastion.access.masking import mask_value
from bastion.access.models import ColumnMode
from bastion.access.policy import TableAccess
from bastion.explorer.changes import original_token
from bastion.explorer.schema import ColumnInfo, TableInfo
from bastion.explorer.values import InvalidValue, form_text, is_binary, parse

Mode = Literal["insert", "update"]
SHORT_TEXT = 255  # longer (or unbounded) text gets a textarea
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
NULL_LABEL = "NULL"
DEFAULT_LABEL = "use the default"
NAIVE_DATETIME_PLACEHOLDER = "YYYY-MM-DD HH:MM:SS"
AWARE_HELP = "UTC unless you give an offset, e.g. +02:00"
_BOOLEAN_CHOICES = [("true", "true"), ("false", "false")]
_TRUE_TEXTS = {"1", "true", "t", "y", "yes", "on"}
_FALSE_TEXTS = {"0", "false", "f", "n", "no", "off"}
# Values an <input type=...> can hold; anything else is shown in a plain text input instead.
_TYPED_INPUT_FORMATS = {
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "time": re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?"),
    "number": re.compile(r"[+-]?\d+"),
}


@dataclass(frozen=True)
class Entry:
    """One column in the form: its value field and companion boxes (names, not bound fields)."""

    column: ColumnInfo
    name: str  # "c3"
    writable: bool
    masked: bool
    null_name: str | None  # "c3_null"
    default_name: str | None  # "c3_default"

    @property
    def binary(self) -> bool:
        return self.column.kind == "binary"

    @property
    def empty_means_null(self) -> bool:
        """An empty field of this column stands for NULL (not for the empty string)."""
        column = self.column
        return not column.is_texty or bool(column.choices and "" not in column.choices)


@dataclass(frozen=True)
class BoundEntry:
    """An Entry with its bound fields, for templates: ``field``, ``null`` and ``default`` (None when absent)."""

    entry: Entry
    field: forms.BoundField
    null: forms.BoundField | None
    default: forms.BoundField | None

    @property
    def column(self) -> ColumnInfo:
        return self.entry.column

    @property
    def writable(self) -> bool:
        return self.entry.writable

    @property
    def masked(self) -> bool:
        return self.entry.masked


def _boolean_text(value: Any) -> str:
    text = form_text(value).strip().lower()
    if text in _TRUE_TEXTS:
        return "true"
    if text in _FALSE_TEXTS:
        return "false"
    return form_text(value)


def _widget(column: ColumnInfo, mode: Mode) -> forms.Widget:
    kind = column.kind
    # An empty choice: nothing chosen yet (insert), or the NULL a nullable column may hold.
    empty = [("", "—")] if mode == "insert" or column.nullable else []
    if column.choices:
        return forms.Select(choices=([] if "" in column.choices else empty) + [(c, c) for c in column.choices])
    if kind == "integer":
        return forms.NumberInput(attrs={"step": "1"})
    if kind == "decimal":
        return forms.TextInput(attrs={"inputmode": "decimal"})
    if kind == "boolean":
        return forms.Select(choices=empty + _BOOLEAN_CHOICES)
    if kind == "date":
        return forms.TextInput(attrs={"type": "date"})
    if kind == "time" and not column.timezone:
        return forms.TextInput(attrs={"type": "time", "step": "1"})
    if kind == "datetime":
        return forms.TextInput(attrs={"placeholder": NAIVE_DATETIME_PLACEHOLDER})
    if kind == "json":
        return forms.Textarea(attrs={"rows": "6"})
    if kind == "text":
        if column.length is not None and column.length <= SHORT_TEXT:
            return forms.TextInput(attrs={"maxlength": str(column.length)})
        return forms.Textarea(attrs={"rows": "2"})
    return forms.TextInput()  # float, uuid, time with zone, other


def _value_field(entry: Entry, mode: Mode) -> forms.Field:
    column = entry.column
    help_text = AWARE_HELP if column.timezone and column.kind in ("datetime", "time") else ""
    if not entry.writable:
        widget = forms.TextInput() if entry.binary or entry.masked else _widget(column, mode)
        return forms.CharField(label=column.name, required=False, disabled=True, strip=False, widget=widget,
                               help_text=help_text)
    required = entry.null_name is None and entry.default_name is None and entry.empty_means_null
    if entry.binary:
        return forms.FileField(label=column.name, required=required and mode == "insert", allow_empty_file=True,
                               widget=forms.FileInput, help_text=help_text)
    return forms.CharField(label=column.name, required=required, strip=False, widget=_widget(column, mode),
                           help_text=help_text)


def _entries(info: TableInfo, access: TableAccess, mode: Mode) -> tuple[Entry, ...]:
    writable_names = access.insertable if mode == "insert" else access.updatable
    entries = []
    for column in info.columns:
        view = access.columns.get(column.name)
        if view is None or view.mode == ColumnMode.HIDDEN:
            continue
        if mode == "insert" and column.primary_key and column.autoincrement:
            continue  # the database numbers it
        name = f"c{len(entries)}"
        masked = view.mode == ColumnMode.MASKED
        writable = column.name in writable_names and not masked
        has_default = column.default is not None or column.autoincrement
        entries.append(Entry(
            column=column, name=name, writable=writable, masked=masked,
            null_name=f"{name}_null" if writable and column.nullable else None,
            default_name=f"{name}_default" if writable and mode == "insert" and has_default else None,
        ))
    return tuple(entries)


class RowForm(forms.Form):
    """Base of the generated forms. Construct with ``row=`` (the current values) for an update form.

    GET:  ``Form(row=found.values)`` (update) or ``Form()`` (insert);
    POST: ``Form(request.POST, request.FILES, row=found.values)``, then ``is_valid()`` and ``values()``.
    """

    info: ClassVar[TableInfo]
    access: ClassVar[TableAccess]
    mode: ClassVar[Mode]
    entries: ClassVar[tuple[Entry, ...]]

    def __init__(self, data: Any = None, files: Any = None, *, row: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        if self.mode == "update" and row is None:
            raise TypeError("an update form needs the row's current values (row=...)")
        self.row = dict(row) if row is not None else None
        initial = (initial_from_row(self.info, self.access, self.row) if self.row is not None
                   else self._insert_initial())
        initial.update(kwargs.pop("initial", None) or {})
        super().__init__(data, files, initial=initial, **kwargs)
        self._values: dict[str, Any] | None = None
        for entry in self.entries:
            self._fit_widget(entry)

    @classmethod
    def _insert_initial(cls) -> dict[str, Any]:
        return {e.default_name: True for e in cls.entries if e.default_name}

    def _fit_widget(self, entry: Entry) -> None:
        """Show an existing value the typed input cannot hold as text, and NULL as a placeholder."""
        widget = self.fields[entry.name].widget
        current = self.initial.get(entry.name)
        input_type = getattr(widget, "input_type", None)
        pattern = _TYPED_INPUT_FORMATS.get(input_type or "")
        if pattern is not None and current and not pattern.fullmatch(str(current)):
            self.fields[entry.name].widget = widget = forms.TextInput()
        if isinstance(widget, forms.Select) and current and current not in {str(c) for c, _ in widget.choices}:
            widget.choices = [*widget.choices, (current, current)]  # a value outside the list stays as it is
        if not entry.writable:
            if self.row is None:
                widget.attrs["placeholder"] = "set by the database"
            elif self.row.get(entry.column.name) is None:
                widget.attrs["placeholder"] = NULL_LABEL

    @property
    def bound_entries(self) -> list[BoundEntry]:
        """Each column's field with its companion boxes, in column order."""
        return [BoundEntry(e, self[e.name], self[e.null_name] if e.null_name else None,
                           self[e.default_name] if e.default_name else None) for e in self.entries]

    @property
    def original(self) -> str:
        """The sealed digest of the row as the form was loaded (update forms; after is_valid())."""
        return self.cleaned_data["original"]

    def _text(self, entry: Entry, value: str) -> str:
        if not isinstance(self.fields[entry.name].widget, forms.Textarea):
            return value
        current = self.row.get(entry.column.name) if self.row is not None else None
        if isinstance(current, str) and "\r\n" in current:
            return value
        return value.replace("\r\n", "\n")  # browsers send CRLF line breaks from a textarea

    def _unchanged(self, entry: Entry, text: str, is_null: bool) -> bool:
        """On update: is the field as it was loaded (so the column is not written)?"""
        if self.mode != "update":
            return False
        loaded_null = bool(entry.null_name and self.initial.get(entry.null_name))
        if entry.binary:
            return text == "" and is_null == loaded_null  # no upload: keep the current value
        if loaded_null or is_null:
            return loaded_null and is_null and text == ""
        return text == self._text(entry, str(self.initial.get(entry.name, "")))

    def _read_upload(self, entry: Entry, upload: Any) -> bytes | None:
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            self.add_error(entry.name, f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
            return None
        return upload.read()

    def _clean_entry(self, entry: Entry, values: dict[str, Any]) -> None:
        data = self.cleaned_data
        raw = data.get(entry.name)
        if entry.binary:
            upload, text = raw, ("x" if raw else "")
        else:
            upload, text = None, self._text(entry, raw or "")
        is_null = bool(entry.null_name and data.get(entry.null_name))
        use_default = bool(entry.default_name and data.get(entry.default_name))
        given = text != ""
        if use_default and is_null:
            self.add_error(entry.default_name, f"Tick either {NULL_LABEL} or “{DEFAULT_LABEL}”, not both.")
        elif (use_default or is_null) and given:
            box = f"“{DEFAULT_LABEL}”" if use_default else NULL_LABEL
            self.add_error(entry.name, f"Untick {box} to store this value, or clear it.")
        elif use_default or self._unchanged(entry, text, is_null):
            return
        elif is_null:
            values[entry.column.name] = None
        elif not given and entry.empty_means_null:
            if entry.column.nullable:
                values[entry.column.name] = None
            elif entry.binary and self.mode == "update":
                return
            else:
                self.add_error(entry.name, "This column needs a value.")
        elif entry.binary:
            content = self._read_upload(entry, upload)
            if content is not None:
                values[entry.column.name] = content
        else:
            try:
                values[entry.column.name] = parse(text, entry.column)
            except InvalidValue as exc:
                self.add_error(entry.name, str(exc))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values: dict[str, Any] = {}
        for entry in self.entries:
            if entry.writable and entry.name not in self.errors:
                self._clean_entry(entry, values)
        self._values = values
        return cleaned

    def values(self) -> dict[str, Any]:
        """Column name -> parsed value (None for NULL) of each column to write. Call after is_valid().

        Insert: the columns not left to their default. Update: the writable columns the user changed
        (changes.update_row writes only those whose value really differs).
        """
        if self._values is None or self.errors:
            raise ValueError("values() needs a valid form")
        return dict(self._values)


def initial_from_row(info: TableInfo, access: TableAccess, row: Mapping[str, Any]) -> dict[str, Any]:
    """Initial data of an update form: each value as form text (masked ones masked), NULL boxes, original."""
    initial: dict[str, Any] = {"original": original_token(info, row)}
    for entry in _entries(info, access, "update"):
        value = row.get(entry.column.name)
        view = access.columns[entry.column.name]
        if entry.masked:
            text = (mask_value(value, view.mask_rule) or "") if view.mask_rule else ""
        elif is_binary(value):
            text = "" if entry.writable else f"binary data, {len(value)} bytes"
        elif entry.column.kind == "boolean" and value is not None:
            text = _boolean_text(value)
        else:
            text = form_text(value)
        initial[entry.name] = text
        if entry.null_name:
            initial[entry.null_name] = value is None
    return initial


def row_form_class(info: TableInfo, access: TableAccess, mode: Mode) -> type[RowForm]:
    """A form class for inserting or updating one row of ``info`` as the user with ``access`` may."""
    if mode not in ("insert", "update"):
        raise ValueError("mode is 'insert' or 'update'")
    entries = _entries(info, access, mode)
    fields: dict[str, forms.Field] = {}
    for entry in entries:
        fields[entry.name] = _value_field(entry, mode)
        if entry.null_name:
            fields[entry.null_name] = forms.BooleanField(label=NULL_LABEL, required=False)
        if entry.default_name:
            fields[entry.default_name] = forms.BooleanField(label=DEFAULT_LABEL, required=False)
    if mode == "update":
        fields["original"] = forms.CharField(widget=forms.HiddenInput, required=True)
    attributes = {"info": info, "access": access, "mode": mode, "entries": entries, **fields}
    return type(RowForm)("RowForm", (RowForm,), attributes)
