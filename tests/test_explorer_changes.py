"""Changing rows on SQLite, PostgreSQL and MariaDB: typed round trips, constraints, optimistic edits (T38),
revert (T37), one audit event per change (T33), column rules enforced by the service (T31), bound values (T01)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import sqlite3
import uuid
from typing import Any

import pytest

from bastion.access.models import ColumnMode, MaskRule
from bastion.access.policy import VISIBLE, ColumnView
from bastion.audit.chain import verify_chain
from bastion.audit.models import AuditEvent
from bastion.explorer import changes, tokens
from bastion.explorer.changes import (
    ChangeRefused,
    EditConflict,
    NotPermitted,
    TableBusy,
    delete_row,
    delete_rows,
    insert_row,
    original_token,
    revert,
    update_row,
)
from bastion.explorer.forms import row_form_class
from bastion.explorer.history import event_rows, row_history, table_history
from bastion.explorer.schema import KeyKind
from tests import engines
from tests.engines import HOSTILE
from tests.explorer_fixtures import (
    access_of,
    browser_data,
    clerk,
    key_of,
    key_token,
    people_table,
    request_for,
    rows,
    superuser,
    table_info,
    token,
    typed_table,
    viewer,
)

INJECTIONS = [
    "' OR 1=1 --",
    "1; DROP TABLE people; --",
    "x'); DELETE FROM people; --",
    "' UNION SELECT secret, hidden_col FROM people --",
    "1' AND SLEEP(5) --",
    "'; SELECT pg_sleep(5); --",
    'Robert"); DROP TABLE pets;--',
    "\\'; --",
]

# The engines' fixtures, by name (pytest finds them as attributes of this module).
target, sqlite_target, postgresql_target = engines.target, engines.sqlite_target, engines.postgresql_target


def row_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith="row.").order_by("seq"))


def by_id(t, table: str) -> dict[Any, dict[str, Any]]:
    return {r["id"]: r for r in rows(t, table)}


def seen_by(user, info, row: dict[str, Any]) -> dict[str, Any]:
    """The row as the edit form loads it for ``user``: every column not hidden from them."""
    access = access_of(user, info)
    return {k: v for k, v in row.items() if access.columns[k].mode != ColumnMode.HIDDEN}


# --- typed round trips ----------------------------------------------------------------------------------
BINARY = b"\x00\x01\xfe\xff binary\x00"
FIRST = {
    "i": "42", "big": "9007199254740993", "d": "12.50", "f": "3.25", "b": "true", "da": "2024-02-29",
    "t": "13:45:30", "dt": "2024-02-29 13:45:30", "s": "hello", "note": "line one\r\nline two",
    "j": '{"a": [1, 2, {"b": null}], "z": "ü"}', "choice": "green", "req": "required",
}
SECOND = {
    "i": "-7", "big": "-9223372036854775808", "d": "-0.01", "f": "-1e-06", "b": "false", "da": "1999-12-31",
    "t": "00:00:01", "dt": "2000-01-01 00:00:00", "s": "bye", "note": "", "j": "[true, 1.5]", "choice": "red",
    "req": "",
}
PG_ONLY = {"first": {"dtz": "2024-02-29 13:45:30+02:00", "u": "123e4567-e89b-12d3-a456-426614174000",
                     "mood": "sad"},
           "second": {"dtz": "2024-03-01 08:00:00", "u": "00000000-0000-0000-0000-000000000001", "mood": "happy"}}


def normal(kind: str, name: str, value: Any) -> Any:
    """A stored value in one comparable form, whatever the engine returned."""
    if value is None:
        return None
    if name == "d":
        return decimal.Decimal(str(value)).normalize()
    if name == "b":
        return bool(value)
    if name in ("da", "dt", "dtz") and isinstance(value, str):
        return dt.datetime.fromisoformat(value) if name != "da" else dt.date.fromisoformat(value)
    if name == "dtz":
        return value.astimezone(dt.UTC)
    if name == "t":
        if isinstance(value, dt.timedelta):
            return (dt.datetime.min + value).time()
        return dt.time.fromisoformat(value) if isinstance(value, str) else value
    if name == "j":
        return json.loads(value) if isinstance(value, str) else value
    if name == "u":
        return uuid.UUID(str(value))
    if name == "bin":
        return bytes(value)
    return value


def expected(name: str, text: str) -> Any:
    if name == "i" or name == "big":
        return int(text)
    if name == "d":
        return decimal.Decimal(text).normalize()
    if name == "f":
        return float(text)
    if name == "b":
        return text in ("true", "1")
    if name == "da":
        return dt.date.fromisoformat(text)
    if name == "t":
        return dt.time.fromisoformat(text)
    if name == "dt":
        return dt.datetime.fromisoformat(text)
    if name == "dtz":
        parsed = dt.datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if name == "j":
        return json.loads(text)
    if name == "u":
        return uuid.UUID(text)
    return text.replace("\r\n", "\n")


def test_typed_round_trip_of_every_kind(target):
    info = typed_table(target)
    boss = superuser()
    access = access_of(boss, info)
    names = set(info.column_names)
    first = {**FIRST, **({k: v for k, v in PG_ONLY["first"].items() if k in names})}
    if "mood" in names:
        first["mood"] = "sad"
    second = {**SECOND, **({k: v for k, v in PG_ONLY["second"].items() if k in names})}
    if "mood" in names:
        second["mood"] = "happy"
    if info.column("b").kind == "integer":  # MariaDB's BOOLEAN is TINYINT(1)
        first["b"], second["b"] = "1", "0"

    # Insert through the form: n keeps its default, the binary is uploaded.
    insert_form = row_form_class(info, access, "insert")()
    data = browser_data(insert_form, **first)
    bin_field = next(e.name for e in insert_form.entries if e.column.name == "bin")
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = row_form_class(info, access, "insert")(data, {bin_field: SimpleUploadedFile("x.bin", BINARY)})
    assert form.is_valid(), form.errors
    assert ("n" not in form.values() and "id" not in form.values()) or target.kind == "sqlite"
    new_token = insert_row(boss, request_for(boss), info, form.values())
    (stored,) = rows(target, "typed")
    for name, text in first.items():
        assert normal(target.kind, name, stored[name]) == expected(name, text), name
    assert bytes(stored["bin"]) == BINARY
    assert stored["n"] == 7
    assert key_of(new_token) == [["id"], [stored["id"]]]

    # Reload: every value shows as it was typed (line breaks as stored); posting it back changes nothing.
    update_class = row_form_class(info, access, "update")
    loaded = update_class(row=stored)
    unchanged = update_class(browser_data(loaded), row=stored)
    assert unchanged.is_valid(), unchanged.errors
    assert unchanged.values() == {}
    update_row(boss, request_for(boss), info, new_token, unchanged.original, unchanged.values())
    assert rows(target, "typed") == [stored]
    assert row_events()[-1].details["columns"] == []

    # Change every kind; the binary is kept since no file is uploaded.
    edit = update_class(browser_data(loaded, **second), row=stored)
    assert edit.is_valid(), edit.errors
    assert "bin" not in edit.values()
    update_row(boss, request_for(boss), info, new_token, edit.original, edit.values())
    (changed,) = rows(target, "typed")
    for name, text in second.items():
        assert normal(target.kind, name, changed[name]) == expected(name, text), name
    assert bytes(changed["bin"]) == BINARY

    # NULL in every nullable column, through the NULL boxes.
    nullable = [c.name for c in info.columns if c.nullable and not c.primary_key]
    loaded = update_class(row=changed)
    nulls = update_class(browser_data(loaded, **dict.fromkeys(nullable)), row=changed)
    assert nulls.is_valid(), nulls.errors
    update_row(boss, request_for(boss), info, new_token, nulls.original, nulls.values())
    (emptied,) = rows(target, "typed")
    assert all(emptied[name] is None for name in nullable)
    assert len(row_events()) == 4


def test_defaults_autoincrement_and_required_columns(target):
    info = typed_table(target)
    boss = superuser()
    first = insert_row(boss, None, info, {"req": "a"})
    second = insert_row(boss, None, info, {"req": "b", "n": 3})
    stored = rows(target, "typed")
    assert [(r["req"], r["n"]) for r in stored] == [("a", 7), ("b", 3)]
    assert stored[1]["id"] > stored[0]["id"]
    assert [key_of(t)[1] for t in (first, second)] == [[r["id"]] for r in stored]
    with pytest.raises(ChangeRefused, match="req") as refused:
        insert_row(boss, None, info, {"i": 1})
    assert "refused" in refused.value.message
    with pytest.raises(ChangeRefused, match="req"):
        update_row(boss, None, info, first, original_token(info, stored[0]), {"req": None})
    assert rows(target, "typed") == stored
    assert len(row_events()) == 2


# --- constraints ------------------------------------------------------------------------------------------
def test_constraint_violations_are_refused_with_the_constraint_name_and_change_nothing(target):
    info = people_table(target)
    boss = superuser()
    before, events = rows(target, "people"), len(row_events())
    ann = before[0]

    def refused(*names: str):
        return pytest.raises(ChangeRefused, match="|".join(names))

    unique = "people_name_unique" if target.kind != "sqlite" else r"people\.name"
    with refused(unique):
        insert_row(boss, None, info, {"name": "bob"})
    with refused(unique):
        update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": "cid"})
    with refused("qty_positive"):
        insert_row(boss, None, info, {"name": "dan", "qty": 0})
    with refused("pets_owner_fk", "FOREIGN KEY"):
        delete_row(boss, None, info, token(info, 1))
    with refused("pets_owner_fk", "FOREIGN KEY"):
        update_row(boss, None, info, token(info, 1), original_token(info, ann), {"id": 99})
    with refused("name"):
        insert_row(boss, None, info, {"name": None})
    if target.kind != "sqlite":  # SQLite does not enforce lengths or types
        with refused("too long", "Data too long"):
            insert_row(boss, None, info, {"name": "x" * 41})
        with refused("invalid input syntax for type integer", "Incorrect integer value"):
            insert_row(boss, None, info, {"name": "eve", "qty": "many"})
    with pytest.raises(ChangeRefused) as bulk:
        delete_rows(boss, None, info, [token(info, 3), token(info, 1)])  # 1 is referenced: neither goes
    assert "bulk" not in bulk.value.message
    assert rows(target, "people") == before
    assert len(row_events()) == events


def test_a_value_shown_in_a_duplicate_key_message_is_left_out_on_mariadb(target):
    info = people_table(target)
    boss = superuser()
    with pytest.raises(ChangeRefused) as refused:
        insert_row(boss, None, info, {"name": "ann"})
    if target.kind == "mysql":
        assert "'ann'" not in refused.value.message and "people_name_unique" in refused.value.message


# --- T38 ------------------------------------------------------------------------------------------------
def test_T38_second_save_from_a_stale_form_is_refused(target):
    info = people_table(target)
    boss = superuser()
    ann = by_id(target, "people")[1]
    original = original_token(info, ann)  # both users load the edit form now
    update_row(boss, None, info, token(info, 1), original, {"name": "anna", "qty": 5})
    with pytest.raises(EditConflict) as conflict:
        update_row(boss, None, info, token(info, 1), original, {"name": "annie"})
    assert not conflict.value.gone
    assert {k: c.text for k, c in conflict.value.changes.items()} == {"name": "anna", "qty": "5"}
    assert "nothing was saved" in conflict.value.message
    stored = by_id(target, "people")[1]
    assert (stored["name"], stored["qty"]) == ("anna", 5)  # the first save is not lost
    with pytest.raises(EditConflict):
        delete_row(boss, None, info, token(info, 1), original)  # a stale delete is refused too
    assert [e.action for e in row_events()] == ["row.update"]
    # Reloaded, the edit goes through.
    update_row(boss, None, info, token(info, 1), original_token(info, stored), {"name": "annie"})
    assert by_id(target, "people")[1]["name"] == "annie"


def test_T38_conflict_shows_current_values_masked_and_hidden_ones_not_at_all(target):
    info = people_table(target)
    user, boss = clerk(target), superuser()
    ann = by_id(target, "people")[1]
    original = original_token(info, seen_by(user, info, ann))
    update_row(boss, None, info, token(info, 1), original_token(info, ann),
               {"secret": "new-secret-4321", "hidden_col": "changed", "qty": 9})
    with pytest.raises(EditConflict) as conflict:
        update_row(user, None, info, token(info, 1), original, {"name": "anna"})
    changes_seen = conflict.value.changes
    assert set(changes_seen) == {"secret", "qty"}
    assert changes_seen["secret"].masked and changes_seen["secret"].text == "****4321"
    assert by_id(target, "people")[1]["name"] == "ann"


def test_T38_a_row_deleted_meanwhile_is_reported_gone(target):
    info = people_table(target)
    boss = superuser()
    cid = by_id(target, "people")[3]
    delete_row(boss, None, info, token(info, 3))
    with pytest.raises(EditConflict) as conflict:
        update_row(boss, None, info, token(info, 3), original_token(info, cid), {"name": "x"})
    assert conflict.value.gone and "no longer exists" in conflict.value.message
    with pytest.raises(EditConflict):
        delete_row(boss, None, info, token(info, 3))


def test_forged_or_foreign_tokens_are_refused(target):
    info = people_table(target)
    pets = table_info(target, "pets")
    boss = superuser()
    ann = by_id(target, "people")[1]
    original = original_token(info, ann)
    for bad in ["garbage", tokens.seal("after", [["id"], [1]]), key_token(info, ["qty"], [1])]:
        with pytest.raises(ChangeRefused, match="row link"):
            update_row(boss, None, info, bad, original, {"name": "x"})
    with pytest.raises(ChangeRefused, match="form"):
        update_row(boss, None, info, token(info, 1), "garbage", {"name": "x"})
    with pytest.raises(ChangeRefused, match="form"):  # a form loaded for another table
        update_row(boss, None, info, token(info, 1), original_token(pets, ann), {"name": "x"})
    # A unique key identifies a row as well as the primary key.
    update_row(boss, None, info, key_token(info, ["name"], ["ann"]), original, {"qty": 4})
    assert by_id(target, "people")[1]["qty"] == 4
    assert len(row_events()) == 1


# --- T31 ------------------------------------------------------------------------------------------------
def test_T31_masked_hidden_and_unwritable_columns_are_refused_by_the_service(target):
    info = people_table(target)
    user = clerk(target)
    before = rows(target, "people")
    original = original_token(info, seen_by(user, info, before[0]))
    attempts = [
        ({"secret": "x"}, "masked"),  # named in an update grant, but masked for them
        ({"hidden_col": "x"}, "may not set the column 'hidden_col'"),
        ({"no_such": "x"}, "may not set the column 'no_such'"),  # same words: nothing learnt
        ({"qty": 5}, "may not set qty"),  # visible, not updatable
    ]
    for values, message in attempts:
        with pytest.raises(NotPermitted, match=message):
            update_row(user, None, info, token(info, 1), original, {"name": "ok", **values})
    for values in ({"name": "new", "secret": "x"}, {"name": "new", "hidden_col": "x"}):
        with pytest.raises(NotPermitted):
            insert_row(user, None, info, values)
    reader = viewer(target)
    with pytest.raises(NotPermitted, match="add rows"):
        insert_row(reader, None, info, {"name": "new"})
    with pytest.raises(NotPermitted, match="change rows"):
        update_row(reader, None, info, token(info, 1), original, {"name": "new"})
    with pytest.raises(NotPermitted, match="delete rows"):
        delete_row(reader, None, info, token(info, 3))
    with pytest.raises(NotPermitted):
        delete_rows(reader, None, info, [token(info, 3)])
    assert rows(target, "people") == before
    assert row_events() == []
    # What the clerk may do goes through.
    update_row(user, None, info, token(info, 1), original, {"name": "anna"})
    insert_row(user, None, info, {"name": "dan", "qty": 4})
    assert [r["name"] for r in rows(target, "people")] == ["anna", "bob", "cid", "dan"]


# --- T01 ------------------------------------------------------------------------------------------------
def test_T01_injection_payloads_as_values_are_stored_literally(target):
    info = people_table(target)
    boss = superuser()
    ann = by_id(target, "people")[1]
    tokens_ = [insert_row(boss, None, info, {"name": f"p{i}", "secret": payload})
               for i, payload in enumerate(INJECTIONS)]
    stored = {r["name"]: r for r in rows(target, "people")}
    assert [stored[f"p{i}"]["secret"] for i in range(len(INJECTIONS))] == INJECTIONS
    update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": INJECTIONS[0]})
    assert by_id(target, "people")[1]["name"] == INJECTIONS[0]
    # A payload as a key value finds no row (or is no integer) and deletes nothing.
    with pytest.raises(ChangeRefused):
        delete_row(boss, None, info, key_token(info, ["id"], ["x' OR '1'='1"]))
    delete_row(boss, None, info, tokens_[0])
    assert len(rows(target, "people")) == 3 + len(INJECTIONS) - 1
    assert len(rows(target, "pets")) == 1


def test_T01_hostile_table_and_column_names_are_quoted(target):
    table, col = HOSTILE[0], HOSTILE[2]
    key = "id"
    target.run(f"CREATE TABLE {target.table(table)} ({key} INTEGER PRIMARY KEY, {target.q(col)} VARCHAR(40), "
               f"{target.q(HOSTILE[3])} VARCHAR(40))")
    info = table_info(target, table)
    boss = superuser()
    new = insert_row(boss, None, info, {key: 1, col: "v1", HOSTILE[3]: "it's"})
    (row,) = rows(target, table)
    update_row(boss, None, info, new, original_token(info, row), {col: "v2"})
    assert rows(target, table)[0][col] == "v2"
    delete_row(boss, None, info, new)
    assert rows(target, table) == []


# --- T33 ------------------------------------------------------------------------------------------------
def test_T33_every_change_writes_exactly_one_audit_event_with_the_whole_row(target):
    info = people_table(target)
    user = clerk(target)
    request = request_for(user)
    ann = by_id(target, "people")[1]
    new = insert_row(user, request, info, {"name": "dan", "qty": 4})
    dan_id = key_of(new)[1][0]
    update_row(user, request, info, token(info, 1), original_token(info, seen_by(user, info, ann)),
               {"name": "anna"})
    delete_row(user, request, info, new)
    assert delete_rows(user, request, info, [token(info, 2), token(info, 3), token(info, 2)]) == 2
    events = row_events()
    assert [e.action for e in events] == ["row.insert", "row.update", "row.delete", "row.bulk_delete"]
    schema = target.schema
    for event in events:
        assert event.actor == "clerk" and event.ip == "192.0.2.10" and event.outcome == "success"
        assert event.target == f"{target.connection.name}: {schema + '.' if schema else ''}people"
        assert event.details["connection_id"] == target.connection.pk
        assert (event.details["schema"], event.details["table"]) == (schema, "people")
    insert, update, delete, bulk = events
    assert insert.details["key"] == [dan_id] and insert.before is None
    assert insert.after["name"] == "dan" and insert.after["hidden_col"] is None
    assert update.details["columns"] == ["name"]
    # The audit store keeps hidden and masked columns in clear.
    assert update.before["secret"] == "ann-secret-1234" and update.before["hidden_col"] == "hidden-ann"
    assert (update.before["name"], update.after["name"]) == ("ann", "anna")
    assert delete.details["key"] == [dan_id] and delete.after is None and delete.before["name"] == "dan"
    assert bulk.details["keys"] == [[2], [3]] and bulk.details["count"] == 2
    assert [r["hidden_col"] for r in bulk.before] == ["hidden-bob", "hidden-cid"]
    assert verify_chain(AuditEvent.objects.order_by("seq")).ok


def test_T33_a_failed_audit_write_rolls_the_change_back(target, monkeypatch):
    info = people_table(target)
    boss = superuser()
    before = rows(target, "people")

    def broken(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(changes, "record", broken)
    with pytest.raises(RuntimeError):
        insert_row(boss, None, info, {"name": "dan"})
    with pytest.raises(RuntimeError):
        update_row(boss, None, info, token(info, 1), original_token(info, before[0]), {"name": "anna"})
    with pytest.raises(RuntimeError):
        delete_rows(boss, None, info, [token(info, 2), token(info, 3)])
    assert rows(target, "people") == before


def test_big_binaries_are_audited_by_digest(sqlite_target):
    t = sqlite_target
    t.run("CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB)")
    info = table_info(t, "files")
    boss = superuser()
    big = b"\x01" * (changes.AUDIT_BLOB_LIMIT + 1)
    new = insert_row(boss, None, info, {"data": big})
    event = row_events()[-1]
    import hashlib

    assert event.after["data"] == {"omitted": hashlib.sha256(big).hexdigest(), "size": len(big)}
    delete_row(boss, None, info, new)
    with pytest.raises(ChangeRefused, match="too large"):
        revert(boss, None, row_events()[-1].pk)
    assert rows(t, "files") == []


# --- T37 ------------------------------------------------------------------------------------------------
def test_T37_revert_restores_inserts_updates_and_deletes(target):
    info = people_table(target)
    boss = superuser()
    original_rows = rows(target, "people")
    new = insert_row(boss, None, info, {"name": "dan", "qty": 4})
    ann = by_id(target, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, ann),
               {"name": "anna", "hidden_col": "changed"})
    delete_row(boss, None, info, token(info, 2))
    delete_rows(boss, None, info, [token(info, 3)])
    insert_event, update_event, delete_event, bulk_event = row_events()
    for event in (bulk_event, delete_event, update_event, insert_event):
        revert(boss, request_for(boss), event.pk)
    assert rows(target, "people") == original_rows
    reverts = row_events()[4:]
    assert [e.action for e in reverts] == ["row.revert"] * 4
    assert [e.details["reverted_seq"] for e in reverts] == [bulk_event.seq, delete_event.seq, update_event.seq,
                                                             insert_event.seq]
    assert key_of(new)[1] not in [[r["id"]] for r in rows(target, "people")]
    # Twice is refused, and so is reverting a revert.
    with pytest.raises(ChangeRefused, match="already reverted"):
        revert(boss, None, update_event.pk)
    with pytest.raises(ChangeRefused, match="cannot itself be reverted"):
        revert(boss, None, reverts[0].pk)
    assert len(row_events()) == 8


def test_T37_revert_of_a_since_modified_row_refuses(target):
    info = people_table(target)
    boss = superuser()
    ann = by_id(target, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": "anna"})
    first = row_events()[-1]
    anna = by_id(target, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, anna), {"qty": 8})
    with pytest.raises(EditConflict, match=re.escape(changes.CHANGED_SINCE)) as conflict:
        revert(boss, None, first.pk)
    assert conflict.value.changes["qty"].text == "8"
    new = insert_row(boss, None, info, {"name": "dan"})
    inserted = row_events()[-1]
    dan = {r["name"]: r for r in rows(target, "people")}["dan"]
    update_row(boss, None, info, new, original_token(info, dan), {"qty": 2})
    with pytest.raises(EditConflict, match="changed since"):
        revert(boss, None, inserted.pk)
    delete_row(boss, None, info, token(info, 2))
    deleted = row_events()[-1]
    target.run(f"INSERT INTO {target.table('people')} (id, name) VALUES (2, 'bobby')")  # noqa: S608 (a quoted test identifier)
    with pytest.raises(EditConflict, match="exists again"):
        revert(boss, None, deleted.pk)
    current = rows(target, "people")
    assert {r["name"] for r in current} == {"anna", "bobby", "cid", "dan"}
    assert by_id(target, "people")[1]["qty"] == 8
    assert not AuditEvent.objects.filter(action="row.revert").exists()


def test_T37_revert_needs_the_grants_of_the_reverse_change(target):
    info = people_table(target)
    boss, user = superuser(), clerk(target)
    ann = by_id(target, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, ann), {"qty": 6})
    with pytest.raises(NotPermitted, match="qty"):
        revert(user, None, row_events()[-1].pk)  # the clerk may not update qty
    delete_row(boss, None, info, token(info, 3))
    with pytest.raises(NotPermitted, match="may not set"):
        revert(user, None, row_events()[-1].pk)  # re-inserting would set the hidden and masked columns
    with pytest.raises(NotPermitted):
        revert(viewer(target), None, row_events()[-1].pk)
    assert len(row_events()) == 2


def test_only_row_events_can_be_reverted(target):
    people_table(target)
    boss = superuser()
    clerk(target)
    other = AuditEvent.objects.exclude(action__startswith="row.").first()
    assert other is not None  # the grants made by the fixtures
    with pytest.raises(ChangeRefused, match="Only row changes"):
        revert(boss, None, other.pk)
    with pytest.raises(ChangeRefused, match="no such event"):
        revert(boss, None, 10**9)


# --- tables without a primary key -------------------------------------------------------------------------
def test_sqlite_rowid_rows_change_and_come_back_with_their_rowid(sqlite_target):
    t = sqlite_target
    t.run("CREATE TABLE notes (body TEXT)", "INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')")
    info = table_info(t, "notes")
    assert info.key_kind == KeyKind.ROWID
    boss = superuser()
    new = insert_row(boss, None, info, {"body": "d"})
    assert key_of(new) == [["rowid"], [4]]
    update_row(boss, None, info, key_token(info, ["rowid"], [2]), original_token(info, {"body": "b"}), {"body": "B"})
    delete_row(boss, None, info, key_token(info, ["rowid"], [2]))
    revert(boss, None, row_events()[-1].pk)
    with sqlite3.connect(t.sqlite_path) as raw:
        assert raw.execute("SELECT rowid, body FROM notes ORDER BY rowid").fetchall() == [
            (1, "a"), (2, "B"), (3, "c"), (4, "d")]
    raw.close()


def test_postgresql_ctid_rows_can_be_edited_and_reverted(postgresql_target):
    t = postgresql_target
    t.run(f"CREATE TABLE {t.table('loose')} (body text)", f"INSERT INTO {t.table('loose')} VALUES ('a'), ('b')")  # noqa: S608 (a quoted test identifier)
    info = table_info(t, "loose")
    assert info.key_kind == KeyKind.CTID
    boss = superuser()
    with t.admin.connect() as conn:
        ctid = conn.exec_driver_sql(f"SELECT ctid FROM {t.table('loose')} WHERE body = 'b'").scalar()  # noqa: S608 (a quoted test identifier)
    moved = update_row(boss, None, info, key_token(info, ["ctid"], [ctid]), original_token(info, {"body": "b"}),
                       {"body": "B"})
    assert key_of(moved)[1] != [ctid]  # an update moves a row in PostgreSQL
    with pytest.raises(EditConflict):  # the old address names no row any more
        update_row(boss, None, info, key_token(info, ["ctid"], [ctid]), original_token(info, {"body": "B"}),
                   {"body": "x"})
    delete_row(boss, None, info, moved)
    revert(boss, None, row_events()[-1].pk)
    assert sorted(r["body"] for r in rows(t, "loose", order="body")) == ["B", "a"]


# --- busy ------------------------------------------------------------------------------------------------
def test_a_locked_sqlite_database_says_try_again(sqlite_target, monkeypatch):
    from bastion.connections import engines

    monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT", 0.1)
    info = people_table(sqlite_target)
    boss = superuser()
    ann = by_id(sqlite_target, "people")[1]
    other = sqlite3.connect(sqlite_target.sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TableBusy, match=re.escape(changes.BUSY)):
            update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": "anna"})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert row_events() == []


# --- history ---------------------------------------------------------------------------------------------
def test_row_and_table_history_and_event_values_as_the_viewer_sees_them(sqlite_target):
    t = sqlite_target
    info = people_table(t)
    boss, user = superuser(), clerk(t)
    ann = by_id(t, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, ann),
               {"name": "anna", "secret": "new-secret-4321", "hidden_col": "hh"})
    update_row(boss, None, info, key_token(info, ["id"], [1]), original_token(info, by_id(t, "people")[1]), {"qty": 7})
    delete_row(boss, None, info, token(info, 3))
    t.run("DELETE FROM pets")
    delete_rows(boss, None, info, [token(info, 1), token(info, 2)])
    first, second, deleted, bulk = row_events()
    assert [e.pk for e in row_history(info, [1])] == [bulk.pk, second.pk, first.pk]
    assert [e.pk for e in row_history(info, [3])] == [deleted.pk]
    assert [e.pk for e in row_history(info, [1], limit=1)] == [bulk.pk]
    assert [e.pk for e in table_history(info)] == [bulk.pk, deleted.pk, second.pk, first.pk]
    assert table_history(table_info(t, "pets")) == []

    views = access_of(user, info).columns
    (row,) = event_rows(first, views)
    shown = {v.column: v for v in row.values}
    assert "hidden_col" not in shown
    assert [v.column for v in row.changed] == ["name", "secret"]
    assert (shown["name"].before.text, shown["name"].after.text) == ("ann", "anna")
    assert shown["secret"].after.masked and shown["secret"].after.text == "****4321"
    assert shown["secret"].before.text == "****1234"
    assert [r.values[1].before.text for r in event_rows(bulk, views)] == ["anna", "bob"]
    assert all(v.after is None for r in event_rows(bulk, views) for v in r.values)
    everything = {c.name: VISIBLE for c in info.columns}
    (clear,) = event_rows(first, everything)
    assert {v.column: v.after.text for v in clear.values}["hidden_col"] == "hh"
    masked_name = {**everything, "name": ColumnView(ColumnMode.MASKED, MaskRule.FIXED)}
    assert event_rows(deleted, masked_name)[0].values[1].before.text == "****"


def test_a_row_locked_by_another_transaction_says_try_again(target, monkeypatch):
    if target.kind == "sqlite":
        pytest.skip("SQLite locks the whole file: see test_a_locked_sqlite_database_says_try_again")
    monkeypatch.setattr(changes, "LOCK_WAIT_SECONDS", 1)
    info = people_table(target)
    boss = superuser()
    ann = by_id(target, "people")[1]
    with target.admin.connect() as other:
        other.begin()
        other.exec_driver_sql(f"SELECT * FROM {target.table('people')} WHERE id = 1 FOR UPDATE")  # noqa: S608 (a quoted test identifier)
        with pytest.raises(TableBusy, match="try again"):
            update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": "anna"})
        other.rollback()
    assert by_id(target, "people")[1]["name"] == "ann"
    assert row_events() == []
    update_row(boss, None, info, token(info, 1), original_token(info, ann), {"name": "anna"})  # free again


def test_T37_a_revert_does_not_name_columns_hidden_from_the_user(sqlite_target):
    info = people_table(sqlite_target)
    boss, user = superuser(), clerk(sqlite_target)
    ann = by_id(sqlite_target, "people")[1]
    update_row(boss, None, info, token(info, 1), original_token(info, ann), {"hidden_col": "x"})
    with pytest.raises(NotPermitted) as refused:
        revert(user, None, row_events()[-1].pk)
    assert "hidden_col" not in refused.value.message
    update_row(boss, None, info, token(info, 1), original_token(info, by_id(sqlite_target, "people")[1]), {})
    with pytest.raises(ChangeRefused, match="changed nothing"):
        revert(boss, None, row_events()[-1].pk)
