"""The import pages' forms: the upload, how the file is read, and which file column goes where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

from bastion.transfer import convert
from bastion.transfer.importer import Mapping

FORMATS = [("csv", "CSV"), ("json", "JSON (an array of objects)"), ("jsonl", "JSON Lines (an object per line)")]
ENCODINGS = [("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM"), ("utf-16", "UTF-16"),
             ("cp1252", "Windows-1252 (Western European)"), ("latin-1", "ISO-8859-1 (Latin-1)"),
             ("cp1250", "Windows-1250 (Central European)"), ("cp1251", "Windows-1251 (Cyrillic)"),
             ("shift_jis", "Shift JIS"), ("gb18030", "GB 18030")]
DELIMITERS = [(",", "comma ,"), (";", "semicolon ;"), ("\t", "tab"), ("|", "vertical bar |")]
QUOTES = [('"', 'double quote "'), ("'", "single quote '")]
CONFLICTS = [("fail", "Stop the import (nothing is written)"),
             ("skip", "Skip the row (keep the existing one)"),
             ("update", "Update the existing row with the file's values")]
SKIP = ""


class UploadForm(forms.Form):
    file = forms.FileField(label="File", help_text="CSV, JSON or JSON Lines.")


class SourceForm(forms.Form):
    """How the file is read; filled with what was detected, every field can be changed."""

    format = forms.ChoiceField(choices=FORMATS)
    encoding = forms.ChoiceField(choices=ENCODINGS)
    delimiter = forms.ChoiceField(choices=DELIMITERS, required=False)
    quotechar = forms.ChoiceField(choices=QUOTES, required=False, label="Quote")
    header = forms.BooleanField(required=False, label="The first row holds the column names")

    def __init__(self, *args: Any, detected_encoding: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = {value for value, _ in ENCODINGS}
        if detected_encoding and detected_encoding not in known:  # what detection found stays choosable
            self.fields["encoding"].choices = [(detected_encoding, detected_encoding), *ENCODINGS]


class CellOptionsForm(forms.Form):
    """How cells are read into values, whatever the target."""

    empty_as_null = forms.BooleanField(required=False, initial=True,
                                       label="Empty text cells are NULL (in other columns an empty cell is always "
                                             "NULL)")
    restore_formulas = forms.BooleanField(
        required=False, initial=False,
        label="Remove the apostrophe Bastion's CSV export puts before text starting with =, +, -, @")

    def options(self) -> convert.Options:
        data = self.cleaned_data
        return convert.Options(empty_as_null=data["empty_as_null"], restore_formulas=data["restore_formulas"])


class MappingForm(CellOptionsForm):
    """One choice per file column: a table column, or skip; plus what happens on a duplicate key."""

    conflict = forms.ChoiceField(choices=CONFLICTS, widget=forms.RadioSelect, initial="fail",
                                 label="When a row's key already exists")

    def __init__(self, *args: Any, file_columns: Sequence[str], targets: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file_columns = list(file_columns)
        choices = [(SKIP, "— skip —"), *((name, name) for name in targets)]
        by_lower = {name.lower(): name for name in targets}
        for position, name in enumerate(self.file_columns):
            self.fields[self.field_name(position)] = forms.ChoiceField(
                choices=choices, required=False, label=name, initial=by_lower.get(name.strip().lower(), SKIP))

    @staticmethod
    def field_name(position: int) -> str:
        return f"map_{position}"

    def rows(self) -> list[tuple[str, forms.BoundField]]:
        return [(name, self[self.field_name(position)]) for position, name in enumerate(self.file_columns)]

    def mapping(self) -> Mapping:
        data = self.cleaned_data
        pairs = tuple((position, data[self.field_name(position)]) for position in range(len(self.file_columns))
                      if data.get(self.field_name(position)))
        return Mapping(pairs, data["conflict"], self.options())
