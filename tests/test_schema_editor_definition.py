"""The schema editor's parts that need no database: identifier rules per engine (T02), column types and
typed defaults, the SQLAlchemy table and its compiled statement, and the preview token."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core import signing
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from bastion.schema_editor import column_types, services
from bastion.schema_editor.column_types import Sizes
from bastion.schema_editor.definition import (
    ColumnSpec,
    ForeignKeySpec,
    TableSpec,
    build_table,
    create_table_sql,
    problems,
)
from bastion.schema_editor.identifiers import column_key, name_problem, table_key

DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect(),
                                "mysql": mysql.pymysql.dialect()}


# --- names (T02) ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dialect", "name", "problem"), [
    ("postgresql", "x" * 63, None),
    ("postgresql", "x" * 64, "63 bytes"),
    ("postgresql", "é" * 31 + "x", None),  # 63 bytes
    ("postgresql", "é" * 32, "this one has 64"),
    ("postgresql", "🎉" * 15 + "abc", None),  # 63 bytes
    ("postgresql", "trailing ", None),
    ("mysql", "x" * 64, None),
    ("mysql", "名" * 64, None),  # characters, not bytes
    ("mysql", "x" * 65, "64 characters"),
    ("mysql", "trailing ", "cannot end with a space"),
    ("mysql", "party 🎉", "Basic Multilingual Plane"),
    ("sqlite", "x" * 1000, None),
    ("sqlite", "x" * 1025, "1024"),
    ("sqlite", "SQLITE_master", "sqlite_"),
    ("sqlite", "", "required"),
    ("postgresql", "a\x00b", "NUL"),
    ("mysql", "co\nl", "control characters"),  # MySQL reflection would drop such a column: grants miss it (T31)
    ("sqlite", "tab\there", "control characters"),
    ("postgresql", "bell\x07", "control characters"),
    ("postgresql", "del\x7f", "control characters"),
    ("postgresql", "c1\x85", "control characters"),
    ("mysql", 'x"; DROP TABLE t; --', None),
    ("postgresql", "a`b", None),
    ("sqlite", "[x]", None),
    ("mysql", "select", None),
])
def test_T02_name_rules_per_engine(dialect, name, problem):
    found = name_problem(name, dialect, table=True)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_T02_sqlite_reserves_sqlite_names_for_tables_only():
    assert name_problem("sqlite_x", "sqlite", table=True) is not None
    assert name_problem("sqlite_x", "sqlite", table=False) is None


def test_T02_names_clash_as_each_engine_compares_them():
    assert column_key("Name", "postgresql") != column_key("name", "postgresql")
    assert column_key("Name", "mysql") == column_key("name", "mysql")
    assert column_key("Name", "sqlite") == column_key("name", "sqlite")
    assert column_key("Ä", "sqlite") != column_key("ä", "sqlite")  # SQLite folds ASCII letters only
    assert table_key("Orders", "sqlite") == table_key("orders", "sqlite")
    assert table_key("Orders", "postgresql") != table_key("orders", "postgresql")


# --- types and defaults ------------------------------------------------------------------------------
def test_each_engine_gets_its_own_list_of_types_labelled_with_what_it_writes():
    labels = {name: dict(column_types.type_choices(dialect)) for name, dialect in DIALECTS.items()}
    assert "timestamptz" in labels["postgresql"] and "timestamptz" not in labels["mysql"]
    assert "timestamptz" not in labels["sqlite"]
    assert labels["mysql"]["text"] == "text — LONGTEXT" and labels["postgresql"]["json"] == "JSON — JSONB"
    assert labels["postgresql"]["varchar"] == "varchar(n) — VARCHAR(n)"
    assert labels["sqlite"]["decimal"] == "decimal(p, s) — NUMERIC(p, s)"


@pytest.mark.parametrize(("key", "text", "value"), [
    ("integer", " 42 ", 42), ("bigint", "-9000000000", -9000000000),
    ("decimal", "1E+3", Decimal("1000")), ("decimal", "-0.50", Decimal("-0.50")),
    ("float", "1e-7", 1e-7), ("boolean", "Yes", True), ("boolean", "0", False),
    ("text", "  spaced  ", "  spaced  "), ("json", '{"a": 1}', '{"a": 1}'), ("date", "2024-01-02", "2024-01-02"),
])
def test_defaults_are_parsed_into_the_value_they_stand_for(key, text, value):
    assert column_types.parse_default(key, text, Sizes()) == value


@pytest.mark.parametrize(("key", "text"), [
    ("integer", "1.5"), ("integer", "1; DROP TABLE t"), ("decimal", "NaN"), ("decimal", "Infinity"),
    ("float", "inf"), ("boolean", "perhaps"), ("json", "{"), ("binary", "00"), ("text", "a\x00b"),
    ("decimal", "1E+1001"), ("decimal", "1E-1001"), ("decimal", "1E+99999999999999"),  # T28: refused unexpanded
    ("json", "[" * 5000),  # deeper than Python's parser goes: a message, not a 500
])
def test_defaults_that_do_not_fit_the_type_are_refused(key, text):
    with pytest.raises(ValueError):
        column_types.parse_default(key, text, Sizes())


@pytest.mark.parametrize(("key", "text", "sizes"), [
    ("varchar", "255", Sizes(length=255)), ("decimal", "12, 2", Sizes(precision=12, scale=2)),
    ("decimal", "12", Sizes(precision=12, scale=0)), ("decimal", "", Sizes()), ("integer", "", Sizes()),
])
def test_sizes(key, text, sizes):
    assert column_types.parse_size(key, text) == sizes


@pytest.mark.parametrize(("key", "text"), [
    ("varchar", ""), ("varchar", "0"), ("varchar", "12,2"), ("varchar", "x"), ("decimal", "2,5"),
    ("decimal", "1001"), ("integer", "4"), ("varchar", "99999999"),
])
def test_sizes_refused(key, text):
    with pytest.raises(ValueError):
        column_types.parse_size(key, text)


# --- the statement ---------------------------------------------------------------------------------------
HOSTILE = 'x"; DROP TABLE t; --'


def spec(name: str = HOSTILE, **extra) -> TableSpec:
    return TableSpec(None, name, (
        ColumnSpec("id", "integer", primary_key=True, autoincrement=True),
        ColumnSpec("a`b", "varchar", Sizes(length=30), default="'); DROP TABLE t; -- 100% \\"),
        ColumnSpec("select", "boolean", default="true"),
    ), **extra)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_T02_every_name_is_quoted_and_every_default_is_a_literal(dialect):
    sql = create_table_sql(build_table(spec(), dialect), DIALECTS[dialect])
    preparer = DIALECTS[dialect].identifier_preparer
    assert sql.startswith(f"CREATE TABLE {preparer.quote_identifier(HOSTILE)} (")
    assert preparer.quote_identifier("a`b") in sql and preparer.quote_identifier("select") in sql
    backslash = "\\\\" if dialect == "mysql" else "\\"  # MySQL reads backslash escapes in strings
    assert f"DEFAULT '''); DROP TABLE t; -- 100% {backslash}'" in sql
    assert "%%" not in sql  # shown as the server receives it


def test_the_statement_names_the_schema_and_the_keys():
    table_spec = TableSpec("sales", "orders", (
        ColumnSpec("a", "integer", primary_key=True), ColumnSpec("b", "integer", primary_key=True),
        ColumnSpec("customer", "integer", nullable=True, unique=True)),
        (ForeignKeySpec("customer", "customers", "id", on_delete="SET NULL", on_update="CASCADE"),))
    sql = create_table_sql(build_table(table_spec, "postgresql"), DIALECTS["postgresql"])
    assert sql.startswith('CREATE TABLE "sales"."orders" (')
    assert 'PRIMARY KEY ("a", "b")' in sql and 'UNIQUE ("customer")' in sql
    assert 'FOREIGN KEY("customer") REFERENCES "sales"."customers" ("id") ON DELETE SET NULL ON UPDATE CASCADE' in sql


def test_build_table_needs_resolved_foreign_keys():
    unresolved = spec("t", foreign_keys=(ForeignKeySpec("id", "other"),))
    with pytest.raises(ValueError, match="resolved"):
        build_table(unresolved, "sqlite")


def test_problems_repeat_every_rule_of_the_forms():
    bad = TableSpec(None, "sqlite_t", (
        ColumnSpec("id", "text", primary_key=True, autoincrement=True, nullable=True),
        ColumnSpec("ID", "integer", default="x"),
        ColumnSpec("tz", "timestamptz"),
    ), (ForeignKeySpec("missing", ""),))
    found = " ".join(problems(bad, "sqlite"))
    for text in ("sqlite_", "cannot allow NULL", "Only an integer", "named twice", "whole number",
                 "Choose one of the listed types", "no column “missing”", "choose the table"):
        assert text in found, text
    assert problems(TableSpec(None, "t", ()), "sqlite") == ["A table needs at least one column."]


# --- the preview token ---------------------------------------------------------------------------------
class _Thing:
    def __init__(self, pk: int) -> None:
        self.pk = pk


def _prepared(sql: str, schema: str | None = None) -> services.Prepared:
    return services.Prepared(TableSpec(schema, "t", ()), None, sql)  # type: ignore[arg-type]


def test_T37_a_preview_token_holds_only_for_its_statement_user_connection_and_schema():
    user, connection = _Thing(1), _Thing(7)
    token = services.preview_token(user, connection, _prepared("CREATE TABLE t (a INTEGER)"))
    services.check_preview(token, user, connection, _prepared("CREATE TABLE t (a INTEGER)"))
    for who, where, prepared in (
            (user, connection, _prepared("CREATE TABLE t (a BIGINT)")),
            (_Thing(2), connection, _prepared("CREATE TABLE t (a INTEGER)")),
            (user, _Thing(8), _prepared("CREATE TABLE t (a INTEGER)")),
            (user, connection, _prepared("CREATE TABLE t (a INTEGER)", schema="other"))):
        with pytest.raises(services.PreviewMismatch, match="changed"):
            services.check_preview(token, who, where, prepared)
    forged = signing.dumps({"user": 1}, salt="another purpose")
    with pytest.raises(services.PreviewMismatch, match="from its preview"):
        services.check_preview(forged, user, connection, _prepared("CREATE TABLE t (a INTEGER)"))


def test_T37_a_preview_expires(monkeypatch):
    user, connection, prepared = _Thing(1), _Thing(7), _prepared("CREATE TABLE t (a INTEGER)")
    past = time.time() - services.PREVIEW_MAX_AGE - 5
    monkeypatch.setattr(signing.time, "time", lambda: past)
    token = services.preview_token(user, connection, prepared)
    monkeypatch.undo()
    with pytest.raises(services.PreviewMismatch, match="ten minutes"):
        services.check_preview(token, user, connection, prepared)
