"""The SQL console over HTTP on SQLite, PostgreSQL and MariaDB: grants enforced before and while running (T21,
T22, T31), limits (T28), audit (T33), results, paging, EXPLAIN, downloads, drafts, history, saved queries."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.signals import request_finished
from django.db import close_old_connections

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.roles import add_grant
from bastion.audit.models import AuditEvent
from bastion.console.models import Draft, HistoryEntry, SavedQuery
from tests.engines import mysql_target, postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user, people_table, rows, superuser

pytestmark = pytest.mark.django_db

REFUSED = 'class="notice error"'


def make_user(t: Any, username: str, grants: list[tuple]) -> Any:
    return granted_user(t, username, grants)


def querier(t: Any) -> Any:
    """Reads people through the console: secret masked, hidden_col hidden; no writes."""
    return make_user(t, "querier", [
        (Action.QUERY, ""), (Action.VIEW, "people"), (Action.VIEW, "pets"),
        (Action.VIEW, "people", "secret", ColumnMode.MASKED, MaskRule.LAST4),
        (Action.VIEW, "people", "hidden_col", ColumnMode.HIDDEN)])


def writer(t: Any) -> Any:
    """querier's view, plus query_write and update of people.name and delete on pets."""
    return make_user(t, "writer", [
        (Action.QUERY, ""), (Action.QUERY_WRITE, ""), (Action.VIEW, "people"), (Action.VIEW, "pets"),
        (Action.VIEW, "people", "hidden_col", ColumnMode.HIDDEN),
        (Action.UPDATE, "people", "name"), (Action.DELETE, "pets"), (Action.EXPORT, "")])


def console_url(t: Any, page: str = "") -> str:
    return f"/db/{t.connection.pk}/console/{page}"


def run(client: Any, t: Any, sql: str, **extra: str) -> tuple[int, str]:
    response = client.post(console_url(t), {"sql": sql, "run": "1", **extra})
    return response.status_code, response.content.decode()


def table(t: Any, name: str) -> str:
    return t.table(name)


def cells(body: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", body, re.S)]


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


@pytest.fixture
def people(target):  # noqa: F811
    people_table(target)
    return target


def signed(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


# --- running ---------------------------------------------------------------------------------------
def test_admin_runs_a_query_and_sees_rows_audit_history_and_draft(client, people):
    boss = superuser()
    status, body = run(signed(client, boss), people, f"SELECT name, qty FROM {table(people, 'people')} ORDER BY id")
    assert status == 200, body
    assert cells(body) == ["ann", "1", "bob", "2", "cid", "3"]
    event = last_event("console.run")
    assert event.outcome == "success"
    [statement] = event.details["statements"]
    assert statement["kind"] == "read" and statement["rows_returned"] == 3 and statement["tables"]
    assert HistoryEntry.objects.get(user=boss).outcome == "success"
    assert "SELECT name, qty" in Draft.objects.get(user=boss).text


def test_several_statements_give_one_section_each(client, people):
    script = "SELECT 1 AS one;\n-- a comment; not a split\nSELECT 'a;b' AS two"
    status, body = run(signed(client, superuser()), people, script)
    assert status == 200, body
    assert 'id="result-1"' in body and 'id="result-2"' in body
    assert "a;b" in cells(body)


def test_first_error_stops_the_run_and_rolls_everything_back(client, people):
    status, body = run(signed(client, superuser()), people,
                       f"UPDATE {table(people, 'people')} SET qty = 50 WHERE id = 1;\n"
                       f"UPDATE {table(people, 'people')} SET qty = -1 WHERE id = 2")
    assert status == 400
    assert "Statement 2" in body and "Nothing was changed" in body
    assert [r["qty"] for r in rows(people, "people")] == [1, 2, 3]
    assert last_event("console.run").outcome == "failure"


def test_writer_updates_and_the_change_is_committed_and_audited(client, people):
    status, body = run(signed(client, writer(people)), people,
                       f"UPDATE {table(people, 'people')} SET name = 'zed' WHERE id = 1")
    assert status == 200, body
    assert "1 row affected" in body
    assert rows(people, "people")[0]["name"] == "zed"
    event = last_event("console.run")
    assert event.details["committed"] is True and event.details["statements"][0]["rows_affected"] == 1


def test_results_page_through_a_long_query(client, people):
    recursive = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 300) SELECT n FROM c"
    counter = {"postgresql": "SELECT g AS n FROM generate_series(1, 300) AS g"}.get(people.kind, recursive)
    client = signed(client, superuser())
    status, body = run(client, people, counter, size="100", page="1:2")
    assert status == 200, body
    numbers = cells(body)
    assert numbers[0] == "101" and numbers[-1] == "200"
    assert 'value="1:3"' in body and 'value="1:1"' in body


def test_a_result_bigger_than_the_row_limit_is_capped_and_says_so(client, people, settings):
    settings.CONSOLE_MAX_ROWS = 50
    status, body = run(signed(client, superuser()), people,
                       f"SELECT a.id FROM {table(people, 'people')} a, {table(people, 'people')} b, "
                       f"{table(people, 'people')} c, {table(people, 'people')} d", size="25", page="1:2")
    assert status == 200
    assert "more rows than the console pages through" in body


def test_T28_a_slow_statement_is_cut_at_the_timeout(client, people, settings):
    settings.CONSOLE_TIMEOUT = 0.5
    statement = {
        "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
        "postgresql": "SELECT pg_sleep(5)",
        "mysql": "SELECT SLEEP(5)",
    }[people.kind]
    status, body = run(signed(client, superuser()), people, statement)
    assert status == 400
    assert "ran longer than 0.5 seconds and was stopped" in body


# --- refusals --------------------------------------------------------------------------------------
def test_T20_users_without_query_cannot_open_the_console(client, people):
    viewer = make_user(people, "viewer", [(Action.VIEW, "people")])
    assert signed(client, viewer).get(console_url(people)).status_code == 403
    assert client.post(console_url(people), {"sql": "SELECT 1"}).status_code == 403


def test_T21_hidden_column_is_refused_exactly_like_a_missing_one(client, people):
    client = signed(client, querier(people))
    _, hidden = run(client, people, f"SELECT hidden_col FROM {table(people, 'people')}")
    _, missing = run(client, people, f"SELECT no_such FROM {table(people, 'people')}")
    assert REFUSED in hidden and REFUSED in missing
    message = re.search(r'was refused:</strong>(.*?)</div>', hidden, re.S).group(1)
    assert message.replace("hidden_col", "X") == re.search(
        r'was refused:</strong>(.*?)</div>', missing, re.S).group(1).replace("no_such", "X")
    assert "hidden-ann" not in hidden


@pytest.mark.parametrize("shape", ["star", "subquery", "cte", "where", "order", "join", "function"])
def test_T21_hidden_column_is_refused_through_every_shape_of_query(client, people, shape):
    p, pets = table(people, "people"), table(people, "pets")
    sql = {
        "star": f"SELECT * FROM {p}",
        "subquery": f"SELECT name FROM {p} WHERE id IN (SELECT id FROM {p} WHERE hidden_col = 'hidden-ann')",
        "cte": f"WITH c AS (SELECT hidden_col AS h FROM {p}) SELECT h FROM c",
        "where": f"SELECT name FROM {p} WHERE hidden_col LIKE 'hidden-a%'",
        "order": f"SELECT name FROM {p} ORDER BY hidden_col",
        "join": f"SELECT x.hidden_col FROM {pets} AS y JOIN {p} AS x ON x.id = y.owner_id",
        "function": f"SELECT upper(hidden_col) FROM {p}",
    }[shape]
    status, body = run(signed(client, querier(people)), people, sql)
    assert status == 403 and REFUSED in body, body
    assert cells(body) == [] and "HIDDEN-ANN" not in body
    assert last_event("console.run").outcome == "denied"


def test_T31_masked_column_is_refused_and_named_as_masked_also_through_star(client, people):
    client = signed(client, querier(people))
    p = table(people, "people")
    for sql in (f"SELECT secret FROM {p}", f"SELECT id, name, secret FROM {p}"):
        status, body = run(client, people, sql)
        assert status == 403 and "masked" in body and "ann-secret" not in body


def test_T31_masked_column_through_select_star_is_refused_as_masked(client, people):
    masked_only = make_user(people, "masked_only", [
        (Action.QUERY, ""), (Action.VIEW, "people"),
        (Action.VIEW, "people", "secret", ColumnMode.MASKED, MaskRule.LAST4)])
    status, body = run(signed(client, masked_only), people, f"SELECT * FROM {table(people, 'people')}")
    assert status == 403 and 'Column "secret" of' in unescape(body) and "is masked for you" in body
    assert "ann-secret" not in body and cells(body) == []


def test_T21_hidden_column_through_a_view_is_refused(client, people):
    p, view = table(people, "people"), table(people, "people_view")
    people.run(f"CREATE VIEW {view} AS SELECT id, name, hidden_col FROM {p}")
    user = querier(people)
    add_grant(None, None, user.groups.get(), Action.VIEW, people.connection, people.schema or "", "people_view")
    status, body = run(signed(client, user), people, f"SELECT * FROM {table(people, 'people_view')}")
    assert status == 403 and REFUSED in body and "hidden-ann" not in body


def test_T21_read_only_user_cannot_write_in_any_form(client, people):
    client = signed(client, querier(people))
    p = table(people, "people")
    statements = [f"UPDATE {p} SET name = 'x'", f"DELETE FROM {p}", f"INSERT INTO {p} (name) VALUES ('x')",
                  f"DROP TABLE {p}", f"CREATE TABLE {table(people, 'evil')} (a INTEGER)", f"TRUNCATE TABLE {p}"]
    if people.kind == "postgresql":
        statements.append(f"WITH x AS (DELETE FROM {p} RETURNING *) SELECT count(*) FROM x")
    for sql in statements:
        status, body = run(client, people, sql)
        assert status == 403 and REFUSED in body, sql
    assert len(rows(people, "people")) == 3


FORBIDDEN = {
    "sqlite": ["ATTACH DATABASE '/tmp/bastion-attack.db' AS x", "VACUUM INTO '/tmp/bastion-attack.db'",
               "SELECT load_extension('/tmp/evil')", "PRAGMA writable_schema = 1", "DETACH DATABASE x"],
    "postgresql": ["COPY (SELECT 1) TO PROGRAM 'touch /tmp/bastion-attack'", "SELECT pg_read_file('/etc/passwd')",
                   "SELECT lo_import('/etc/passwd')", "SET statement_timeout = 0", "BEGIN",
                   "SELECT set_config('statement_timeout', '0', false)"],
    "mysql": ["SELECT 1 INTO OUTFILE '/tmp/bastion-attack'", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x",
              "SELECT LOAD_FILE('/etc/passwd')", "SET SESSION max_statement_time = 0", "COMMIT"],
}


@pytest.mark.parametrize("who", ["querier", "admin"])
def test_T21_T22_dangerous_statements_are_refused_for_everyone(client, people, who, tmp_path):
    user = querier(people) if who == "querier" else superuser()
    client = signed(client, user)
    for sql in FORBIDDEN[people.kind]:
        status, body = run(client, people, sql)
        assert status == 403 and REFUSED in body, (sql, body[-2000:])
    assert not (tmp_path / "bastion-attack.db").exists()


def test_T21_unverifiable_statements_need_query_write_and_manage(client, people):
    sql = {"postgresql": "DO $$ BEGIN PERFORM 1; END $$", "mysql": "HANDLER people OPEN",
           "sqlite": "REINDEX"}[people.kind]
    status, body = run(signed(client, writer(people)), people, sql)
    assert status == 403 and "query_write and manage" in body


def test_T31_constraint_errors_name_no_hidden_value(client, people):
    status, body = run(signed(client, writer(people)), people,
                       f"UPDATE {table(people, 'people')} SET name = 'bob' WHERE id = 1")
    assert status == 400 and "Nothing was changed" in body
    assert "hidden-" not in body


# --- explain, download -----------------------------------------------------------------------------
def test_explain_shows_a_plan_tree_and_runs_nothing(client, people):
    status, body = run(signed(client, superuser()), people,
                       f"DELETE FROM {table(people, 'pets')} WHERE id = 1", explain="1")
    assert status == 200, body
    assert 'class="plan-tree"' in body
    assert len(rows(people, "pets")) == 1
    assert last_event("console.explain").outcome == "success"


def download(client: Any, t: Any, sql: str, fmt: str = "csv") -> Any:
    return client.post(console_url(t, "download/"), {"sql": sql, "download": f"1:{fmt}"})


def test_download_streams_csv_with_formulas_neutralised(client, people):
    people.run(f"UPDATE {table(people, 'people')} SET name = '=HYPERLINK(\"http://x\")' WHERE id = 1")
    sql = f"SELECT id, name FROM {table(people, 'people')} ORDER BY id"
    response = download(signed(client, writer(people)), people, sql)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines()[1] == "\"1\",\"'=HYPERLINK(\"\"http://x\"\")\""  # every cell quoted (T27)
    event = last_event("console.download")
    assert event.outcome == "success" and event.details["rows"] == 3


def test_download_json_keeps_types_and_nulls(client, people):
    sql = f"SELECT id, qty, hidden_col, NULL AS absent FROM {table(people, 'people')} ORDER BY id"
    response = download(signed(client, superuser()), people, sql, "json")
    data = json.loads(b"".join(response.streaming_content))
    assert data[0] == {"id": 1, "qty": 1, "hidden_col": "hidden-ann", "absent": None}


def test_download_needs_the_export_grant(client, people):
    response = download(signed(client, querier(people)), people, f"SELECT id FROM {table(people, 'people')}")
    assert response.status_code == 403
    assert b"export grant" in response.content


# --- drafts, history, saved queries ------------------------------------------------------------------
def test_draft_is_kept_per_user_and_comes_back(client, people):
    user = querier(people)
    client = signed(client, user)
    response = client.post(console_url(people, "draft/"), {"sql": "SELECT 42"}, HTTP_X_REQUESTED_WITH="fetch")
    assert response.status_code == 204
    assert last_event("console.draft_saved").details["characters"] == 9
    client.logout()
    body = signed(client, user).get(console_url(people)).content.decode()
    assert "SELECT 42</textarea>" in body


def test_history_is_private_and_loads_into_the_editor(client, people):
    owner = querier(people)
    run(signed(client, owner), people, "SELECT 'mine'")
    entry = HistoryEntry.objects.get(user=owner)
    assert "SELECT &#x27;mine&#x27;" in client.get(console_url(people, "history/")).content.decode()
    loaded = client.get(console_url(people) + f"?history={entry.pk}").content.decode()
    assert "SELECT &#x27;mine&#x27;</textarea>" in loaded
    other = make_user(people, "other", [(Action.QUERY, ""), (Action.VIEW, "people")])
    client.force_login(other)
    assert client.get(console_url(people) + f"?history={entry.pk}").status_code == 404
    assert "mine" not in client.get(console_url(people, "history/")).content.decode()


def test_history_keeps_the_newest_entries(client, people, settings):
    settings.CONSOLE_HISTORY = 3
    client = signed(client, superuser())
    for n in range(5):
        run(client, people, f"SELECT {n}")
    assert [e.text for e in HistoryEntry.objects.all()] == ["SELECT 4", "SELECT 3", "SELECT 2"]


def test_saved_query_private_or_shared_with_a_role(client, people):
    owner = querier(people)
    client = signed(client, owner)
    client.post(console_url(people, "saved/new/"), {"sql": "SELECT 'private'", "name": "mine"})
    client.post(console_url(people, "saved/new/"), {"sql": "SELECT 'team'", "name": "team",
                                                     "shared_with": owner.groups.get().pk})
    assert SavedQuery.objects.count() == 2
    teammate = make_user(people, "teammate", [(Action.QUERY, "")])
    teammate.groups.add(owner.groups.get())
    client.force_login(teammate)
    listing = client.get(console_url(people, "saved/")).content.decode()
    assert "team" in listing and "private" not in listing
    shared = SavedQuery.objects.get(name="team")
    assert client.post(console_url(people, f"saved/{shared.pk}/delete/")).status_code == 404
    client.force_login(owner)
    assert client.post(console_url(people, f"saved/{shared.pk}/delete/")).status_code == 302
    assert not SavedQuery.objects.filter(pk=shared.pk).exists()


def test_a_role_the_user_is_not_in_cannot_be_shared_with(client, people):
    owner = querier(people)
    stranger = Group.objects.create(name="strangers")
    signed(client, owner).post(console_url(people, "saved/new/"), {"sql": "SELECT 1", "name": "x",
                                                                    "shared_with": stranger.pk})
    assert not SavedQuery.objects.exists()


# --- limits and audit details (security review findings) ---------------------------------------------
def test_T28_statements_share_one_time_limit(client, people, settings):
    settings.CONSOLE_TIMEOUT = 0.6
    pause = {"sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000) "
                       "SELECT count(*) FROM c",
             "postgresql": "SELECT pg_sleep(0.25)", "mysql": "SELECT SLEEP(0.25)"}[people.kind]
    status, body = run(signed(client, superuser()), people, ";\n".join([pause] * 12))
    assert status == 400 and ("ran longer than 0.6 seconds" in body), body[-3000:]
    assert last_event("console.run").outcome == "failure"


def test_T28_a_script_may_hold_only_so_many_statements(client, people, settings):
    settings.CONSOLE_MAX_STATEMENTS = 5
    status, body = run(signed(client, superuser()), people, "SELECT 1;" * 6)
    assert status == 400 and "runs at most 5 at once" in body


@pytest.mark.parametrize("query", ["?history=²", "?saved=٣", "?history=99999999999999999999999"])
def test_T32_odd_digits_in_ids_are_a_404_not_an_error(client, people, query):
    assert signed(client, superuser()).get(console_url(people) + query).status_code == 404


def test_T33_a_refused_run_writes_exactly_one_event(client, people):
    client = signed(client, querier(people))
    before = AuditEvent.objects.count()
    status, _ = run(client, people, f"DELETE FROM {table(people, 'people')}")
    assert status == 403
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True)[before:]) == ["console.run"]


def test_T33_a_refused_download_is_audited_as_denied(client, people):
    response = download(signed(client, querier(people)), people, f"SELECT id FROM {table(people, 'people')}")
    assert response.status_code == 403
    event = last_event("console.download")
    assert event.outcome == "denied" and "export grant" in event.details["message"]
    assert not AuditEvent.objects.filter(action="request.denied").exists()


def test_T33_a_download_dropped_before_its_first_byte_is_audited_and_closed(client, people):
    response = download(signed(client, superuser()), people, f"SELECT id FROM {table(people, 'people')}")
    assert response.status_code == 200
    # What the server does when the client is gone before the body starts. (Its request_finished signal
    # would also close the test's database connection, as it does after every real request.)
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    event = last_event("console.download")
    assert event.outcome == "failure" and event.details["rows"] == 0


def test_T28_sqlite_values_bigger_than_a_page_fail_in_the_engine(client, sqlite_target, settings):  # noqa: F811
    settings.CONSOLE_MAX_RESULT_BYTES = 1_000_000
    status, body = run(signed(client, superuser()), sqlite_target, "SELECT zeroblob(50000000)")
    assert status == 400 and "too big" in body


def test_a_query_that_returns_no_rows_cannot_be_downloaded(client, mysql_target):  # noqa: F811
    people_table(mysql_target)
    response = download(signed(client, superuser()), mysql_target, "SELECT name INTO @x FROM people LIMIT 1")
    assert response.status_code == 403 and b"return rows" in response.content


def test_T32_postgresql_errors_quote_no_sql(client, postgresql_target):  # noqa: F811
    status, body = run(signed(client, superuser()), postgresql_target, "SELECT no_such_function(1)")
    assert status == 400 and "no_such_function" in body
    assert "LINE 1" not in body and "DECLARE" not in body and "HINT" not in body
