"""The console's forms: the editor (with its paging state) and saving a query."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.models import Group

from bastion.console.runner import DEFAULT_PAGE_SIZE, PAGE_SIZES

MAX_SCRIPT_CHARACTERS = 1_000_000
_PAGE_FIELD = re.compile(r"p([0-9]{1,4})")
_PAGE_NUMBER = re.compile(r"[0-9]{1,7}")
_PAGE_BUTTON = re.compile(r"([0-9]{1,4}):([0-9]{1,7})")
_DOWNLOAD_BUTTON = re.compile(r"([0-9]{1,4}):(csv|jsonl|json|sql)")


class ConsoleForm(forms.Form):
    sql = forms.CharField(label="SQL", strip=False, max_length=MAX_SCRIPT_CHARACTERS,
                          widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "autocapitalize": "off",
                                                       "autocomplete": "off", "class": "sql-editor"}))
    size = forms.TypedChoiceField(label="Rows per page", choices=[(s, s) for s in PAGE_SIZES], coerce=int,
                                  initial=DEFAULT_PAGE_SIZE, required=False, empty_value=DEFAULT_PAGE_SIZE)

    def clean_sql(self) -> str:
        text = self.cleaned_data["sql"]
        if not text.strip():
            raise forms.ValidationError("Write a statement to run.")
        return text

    def pages(self) -> dict[int, int]:
        """Which page of each statement's rows to show: kept in p<k> fields, moved by a page=k:n button."""
        pages = {}
        for name, value in self.data.items():
            match = _PAGE_FIELD.fullmatch(name)
            if match and _PAGE_NUMBER.fullmatch(str(value)):
                pages[int(match.group(1))] = max(1, int(value))
        moved = _PAGE_BUTTON.fullmatch(str(self.data.get("page", "")))
        if moved:
            pages[int(moved.group(1))] = max(1, int(moved.group(2)))
        return pages

    def download(self) -> tuple[int, str] | None:
        """(statement, format) asked for by a download=k:fmt button."""
        match = _DOWNLOAD_BUTTON.fullmatch(str(self.data.get("download", "")))
        return (int(match.group(1)), match.group(2)) if match else None


class SaveQueryForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    sql = forms.CharField(label="SQL", strip=False, max_length=MAX_SCRIPT_CHARACTERS, widget=forms.HiddenInput)
    shared_with = forms.ModelChoiceField(label="Share with role", queryset=Group.objects.none(), required=False,
                                         empty_label="Nobody (private)")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only roles the user is in: sharing never reaches people outside their own teams.
        self.fields["shared_with"].queryset = user.groups.order_by("name")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the query a name.")
        return name
