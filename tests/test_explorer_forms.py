"""Row forms from reflection: positional fields, widgets per kind, NULL and default boxes, parsing, T31 columns."""

from __future__ import annotations

import re

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile

from bastion.explorer.changes import insert_row, update_row
from bastion.explorer.forms import AWARE_HELP, NAIVE_DATETIME_PLACEHOLDER, row_form_class
from tests import engines
from tests.engines import HOSTILE
from tests.explorer_fixtures import (
    access_of,
    browser_data,
    clerk,
    people_table,
    rows,
    superuser,
    table_info,
    token,
    typed_table,
)

# The engines' fixtures, by name (pytest finds them as attributes of this module).
target, sqlite_target, postgresql_target = engines.target, engines.sqlite_target, engines.postgresql_target


def entry_of(form, column: str):
    return next(e for e in form.entries if e.column.name == column)


def field_of(form, column: str) -> forms.Field:
    return form.fields[entry_of(form, column).name]


def admin_form(info, mode: str, data=None, files=None, **kwargs):
    return row_form_class(info, access_of(superuser(), info), mode)(data, files, **kwargs)


# --- naming and HTML ------------------------------------------------------------------------------------
def test_fields_are_positional_labelled_with_the_column_names_and_the_html_is_clean(sqlite_target):
    t = sqlite_target
    columns = ", ".join(f"{t.q(name)} TEXT" for name in HOSTILE)
    t.run(f"CREATE TABLE {t.q('odd')} (id INTEGER PRIMARY KEY, {columns}, {t.q('<b>x</b>')} INTEGER NOT NULL)")
    info = table_info(t, "odd")
    form = admin_form(info, "update", row={"id": 1, **dict.fromkeys(HOSTILE, "v"), "<b>x</b>": None})
    value_fields = [e.name for e in form.entries]
    assert value_fields == [f"c{i}" for i in range(len(info.columns))]
    assert [form.fields[name].label for name in value_fields] == info.column_names
    assert all(re.fullmatch(r"c\d+(_null|_default)?|original", name) for name in form.fields)
    html = str(form.as_div())
    for name in re.findall(r'\b(?:name|id|for)="([^"]*)"', html):
        assert re.fullmatch(r"(id_)?(c\d+(_null|_default)?|original)", name), name
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'x"; DROP' not in html
    assert "style=" not in html and "<script" not in html and not re.search(r"\son\w+=", html)


# --- widgets ----------------------------------------------------------------------------------------------
def test_widgets_follow_the_column_kind(target):
    info = typed_table(target)
    form = admin_form(info, "insert")

    def widget(column: str) -> forms.Widget:
        return field_of(form, column).widget

    assert isinstance(widget("i"), forms.NumberInput) and widget("i").attrs["step"] == "1"
    assert isinstance(field_of(form, "big"), forms.CharField)  # not an IntegerField: any size works
    assert widget("d").attrs == {"inputmode": "decimal"}
    assert type(widget("f")) is forms.TextInput
    if info.column("b").kind == "boolean":
        assert isinstance(widget("b"), forms.Select) and [c for c, _ in widget("b").choices] == ["", "true", "false"]
    assert widget("da").input_type == "date"
    assert widget("t").input_type == "time" and widget("t").attrs == {"step": "1"}
    assert widget("dt").attrs["placeholder"] == NAIVE_DATETIME_PLACEHOLDER
    assert field_of(form, "dt").help_text == ""
    assert widget("s").attrs["maxlength"] == "20" and type(widget("s")) is forms.TextInput
    assert isinstance(widget("note"), forms.Textarea) and isinstance(widget("j"), forms.Textarea)
    assert isinstance(widget("choice"), forms.Select)
    assert [c for c, _ in widget("choice").choices] == ["", "red", "green"]
    assert isinstance(field_of(form, "bin"), forms.FileField)
    if target.kind == "postgresql":
        assert field_of(form, "dtz").help_text == AWARE_HELP
        assert type(widget("u")) is forms.TextInput
        assert [c for c, _ in widget("mood").choices] == ["", "happy", "sad"]


def test_insert_asks_for_defaults_and_nulls_and_requires_the_rest(target):
    info = typed_table(target)
    form = admin_form(info, "insert")
    id_entry = next((e for e in form.entries if e.column.name == "id"), None)
    if info.column("id").autoincrement:
        assert id_entry is None  # the database numbers it
    n, req, i = entry_of(form, "n"), entry_of(form, "req"), entry_of(form, "i")
    assert n.default_name and form.initial[n.default_name] is True and n.null_name is None
    assert i.null_name and i.default_name is None and not form.fields[i.name].required
    assert req.null_name is None and req.default_name is None
    # Empty text is a value; an empty number in a NOT NULL column is not.
    target.run(f"CREATE TABLE {target.table('counts')} (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, "
               f"label VARCHAR(10) NOT NULL)")
    counts = table_info(target, "counts")
    blank = admin_form(counts, "insert")
    k, label = entry_of(blank, "k").name, entry_of(blank, "label").name
    ids = {} if counts.column("id").autoincrement else {entry_of(blank, "id").name: "1"}  # SQLite numbers it
    form = admin_form(counts, "insert", {**ids, k: "", label: ""})
    assert not form.is_valid() and form.errors == {k: ["This field is required."]}
    assert field_of(form, "k").required and not field_of(form, "label").required
    form = admin_form(counts, "insert", {**ids, k: "5", label: ""})
    assert form.is_valid() and form.values() == {**({} if not ids else {"id": 1}), "k": 5, "label": ""}


def test_update_form_requires_the_row(sqlite_target):
    info = people_table(sqlite_target)
    form_class = row_form_class(info, access_of(superuser(), info), "update")
    with pytest.raises(TypeError):
        form_class()
    ann = rows(sqlite_target, "people")[0]
    form = form_class(row=ann)
    assert isinstance(form.fields["original"].widget, forms.HiddenInput) and form.initial["original"]
    posted = form_class({k: v for k, v in browser_data(form).items() if k != "original"}, row=ann)
    assert not posted.is_valid() and "original" in posted.errors


# --- parsing ------------------------------------------------------------------------------------------
def test_invalid_values_are_reported_next_to_their_field(target):
    info = typed_table(target)
    form = admin_form(info, "insert")
    data = browser_data(form, i="abc", d="1,5", j="{bad", choice="blue", da="31.12.2024", dt="tomorrow", req="x")
    form = admin_form(info, "insert", data)
    assert not form.is_valid()
    errors = {entry.column.name: form.errors[entry.name][0] for entry in form.entries if entry.name in form.errors}
    assert errors["i"] == "Enter a whole number."
    assert errors["d"] == "Enter a number such as 12.50."
    assert errors["j"].startswith("This is not valid JSON")
    assert errors["choice"] == "Choose one of: red, green."
    assert errors["da"] == "Enter a date as YYYY-MM-DD."
    assert errors["dt"].startswith("Enter a date and time")
    assert set(errors) == {"i", "d", "j", "choice", "da", "dt"}
    with pytest.raises(ValueError):
        form.values()


def test_null_or_default_ticked_together_with_a_value_is_an_error(target):
    info = typed_table(target)
    form = admin_form(info, "insert")
    i, n = entry_of(form, "i"), entry_of(form, "n")
    data = {**browser_data(form, req="x"), i.name: "5", i.null_name: "on", n.name: "3"}
    form = admin_form(info, "insert", data)
    assert not form.is_valid()
    assert form.errors[i.name] == ["Untick NULL to store this value, or clear it."]
    assert form.errors[n.name] == ["Untick “use the default” to store this value, or clear it."]
    data = {**browser_data(form, req="x", s=None), entry_of(form, "s").name: ""}
    form = admin_form(info, "insert", data)
    assert form.is_valid(), form.errors
    assert form.values()["s"] is None and "n" not in form.values()


def test_empty_fields_store_empty_text_or_null(sqlite_target):
    info = typed_table(sqlite_target)
    form = admin_form(info, "insert")
    form = admin_form(info, "insert", browser_data(form))
    assert form.is_valid(), form.errors
    values = form.values()
    assert values["s"] == "" and values["note"] == "" and values["req"] == ""
    assert values["i"] is None and values["j"] is None and values["choice"] is None and values["bin"] is None


# --- T31 ------------------------------------------------------------------------------------------------
def test_T31_hidden_columns_are_absent_masked_and_unwritable_ones_disabled_and_posts_to_them_ignored(target):
    info = people_table(target)
    user = clerk(target)
    access = access_of(user, info)
    ann = {k: v for k, v in rows(target, "people")[0].items() if k != "hidden_col"}
    update_class = row_form_class(info, access, "update")
    form = update_class(row=ann)
    assert [e.column.name for e in form.entries] == ["id", "name", "qty", "secret"]
    html = str(form.as_div())
    assert "hidden_col" not in html and "hidden-ann" not in html and "ann-secret-1234" not in html
    secret, qty, name = entry_of(form, "secret"), entry_of(form, "qty"), entry_of(form, "name")
    assert secret.masked and not secret.writable and form.fields[secret.name].disabled
    assert form.initial[secret.name] == "****1234"
    assert not qty.writable and form.fields[qty.name].disabled and form.initial[qty.name] == "1"
    assert name.writable
    tampered = {**browser_data(form, name="anna"), secret.name: "stolen", qty.name: "99", "c4": "hidden!",
                f"{qty.name}_null": "on"}
    posted = update_class(tampered, row=ann)
    assert posted.is_valid(), posted.errors
    assert posted.values() == {"name": "anna"}
    update_row(user, None, info, token(info, 1), posted.original, posted.values())
    stored = rows(target, "people")[0]
    assert (stored["name"], stored["qty"], stored["secret"], stored["hidden_col"]) == (
        "anna", 1, "ann-secret-1234", "hidden-ann")

    insert_form = row_form_class(info, access, "insert")()
    numbered = info.column("id").autoincrement  # SQLite's INTEGER PRIMARY KEY is not reflected as such
    assert [(e.column.name, e.writable) for e in insert_form.entries] == [
        *([] if numbered else [("id", True)]), ("name", True), ("qty", True), ("secret", False)]
    assert insert_form.fields[entry_of(insert_form, "secret").name].widget.attrs["placeholder"] == \
        "set by the database"


# --- values as loaded -----------------------------------------------------------------------------------
def test_an_odd_stored_value_neither_blocks_nor_changes_on_save(sqlite_target):
    t = sqlite_target
    info = typed_table(t)
    t.run("INSERT INTO typed (id, da, b, i, req) VALUES (1, 'soon', 1, NULL, 'r')")
    row = {**rows(t, "typed")[0], "choice": "purple"}  # as a file whose CHECK came later could hold
    update_class = row_form_class(info, access_of(superuser(), info), "update")
    form = update_class(row=row)
    da, choice = field_of(form, "da"), field_of(form, "choice")
    assert da.widget.input_type == "text"  # 'soon' fits no date input
    assert form.initial[entry_of(form, "da").name] == "soon"
    assert form.initial[entry_of(form, "b").name] == "true"  # SQLite keeps booleans as 1
    assert ("purple", "purple") in choice.widget.choices
    assert form.initial[entry_of(form, "i").null_name] is True
    posted = update_class(browser_data(form, s="new"), row=row)
    assert posted.is_valid(), posted.errors
    assert posted.values() == {"s": "new"}


def test_line_breaks_from_a_textarea_follow_the_stored_value(sqlite_target):
    t = sqlite_target
    info = typed_table(t)
    boss = superuser()
    form = admin_form(info, "insert")
    form = admin_form(info, "insert", browser_data(form, note="a\r\nb", req="x\r\ny"))
    assert form.is_valid()
    assert (form.values()["note"], form.values()["req"]) == ("a\nb", "x\ny")  # req is a textarea too
    insert_row(boss, None, info, {"id": 1, "note": "kept\r\nas is", "req": "r"})
    row = rows(t, "typed")[0]
    update_class = row_form_class(info, access_of(boss, info), "update")
    loaded = update_class(row=row)
    posted = update_class(browser_data(loaded, note="changed\r\nhere"), row=row)
    assert posted.is_valid() and posted.values() == {"note": "changed\r\nhere"}


def test_binary_columns_keep_replace_or_clear(target):
    info = typed_table(target)
    boss = superuser()
    new = insert_row(boss, None, info, {"bin": b"first", "req": "r"})
    row = rows(target, "typed")[0]
    update_class = row_form_class(info, access_of(boss, info), "update")
    loaded = update_class(row=row)
    bin_entry = entry_of(loaded, "bin")
    assert loaded.initial[bin_entry.name] == ""
    kept = update_class(browser_data(loaded), row=row)
    assert kept.is_valid() and kept.values() == {}
    replaced = update_class(browser_data(loaded), {bin_entry.name: SimpleUploadedFile("f", b"\x00second")}, row=row)
    assert replaced.is_valid() and replaced.values() == {"bin": b"\x00second"}
    update_row(boss, None, info, new, replaced.original, replaced.values())
    assert bytes(rows(target, "typed")[0]["bin"]) == b"\x00second"
    row = rows(target, "typed")[0]
    cleared = update_class({**browser_data(update_class(row=row)), bin_entry.null_name: "on"}, row=row)
    assert cleared.is_valid() and cleared.values() == {"bin": None}

