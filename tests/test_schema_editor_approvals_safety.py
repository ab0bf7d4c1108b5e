"""The two-person rule where the security review (session 4) found a way around it or a leak: now closed.

Rows: T37 (a second approver per role: no way around it, nothing runs but what was asked for),
T31 (hidden columns), T20 (who may decide), T33 (who did what). Every test goes through HTTP
with real users on a real engine and checks what the database holds afterwards.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from bastion.access.models import Action, ColumnMode
from bastion.access.roles import set_two_person_rule
from bastion.audit.models import AuditEvent
from bastion.connections.services import update_connection
from bastion.schema_editor import approvals, drop
from bastion.schema_editor.models import ApprovalRequest, ApprovalStatus
from tests.conftest import HttpsClient
from tests.engines import sqlite_target, target  # noqa: F401
from tests.test_schema_editor_alter import change, columns_of, things
from tests.test_schema_editor_approvals import APPROVALS, ask, decide_url, requester, status_of
from tests.test_schema_editor_drop import count, dropper, make_user, people, signed, tables

pytestmark = pytest.mark.django_db


def console(client: Any, t: Any, sql: str) -> int:
    return client.post(f"/db/{t.connection.pk}/console/", {"sql": sql, "run": "1"}).status_code


def column_dropper(t: Any, username: str = "alice") -> Any:
    """A holder of alter and view whose role makes dropping a column wait for a second person."""
    user = make_user(t, username, [(Action.ALTER, ""), (Action.VIEW, "")])
    set_two_person_rule(None, None, user.groups.get(), (approvals.DROP_COLUMN,))
    return user


def ask_to_drop_amount(t: Any, client: Any) -> ApprovalRequest:
    things(t)
    response = change(signed(client, column_dropper(t)), t, "things", "drop_column", {"column": "amount"})
    assert response.status_code == 302 and response["Location"] == APPROVALS
    return ApprovalRequest.objects.get(operation=approvals.DROP_COLUMN, column="amount")


def hides_amount(t: Any, username: str = "bob") -> Any:
    """Holds alter on every table (the grant a column drop needs) but may not see things.amount at all."""
    return make_user(t, username, [(Action.ALTER, ""), (Action.VIEW, ""),
                                   (Action.VIEW, "things", "amount", ColumnMode.HIDDEN)])


# --- T37: the rule binds every way of making the change ----------------------------------------------------
def test_T37_the_sql_console_does_not_bypass_the_two_person_rule(client, target):  # noqa: F811
    """A member of a role under the two-person rule who also holds query_write drops, empties and drops a column
    through the SQL console at once, without anybody's approval."""
    t = target
    people(t)
    people(t, "other")
    user = make_user(t, "alice", [(Action.VIEW, ""), (Action.DROP, ""), (Action.ALTER, ""), (Action.QUERY, ""),
                                  (Action.QUERY_WRITE, "")])
    set_two_person_rule(None, None, user.groups.get(), [approvals.DROP, approvals.EMPTY, approvals.DROP_COLUMN])
    c = signed(client, user)
    console(c, t, f"DROP TABLE {t.table('people')}")
    console(c, t, f"ALTER TABLE {t.table('other')} DROP COLUMN {t.q('label')}")
    if t.kind != "sqlite":  # SQLite has no TRUNCATE
        console(c, t, f"TRUNCATE TABLE {t.table('other')}")
    ran_alone = [what for what, happened in (("DROP TABLE", "people" not in tables(t)),
                                             ("DROP COLUMN", "label" not in columns_of(t, "other")),
                                             ("TRUNCATE", count(t, "other") != 3)) if happened]
    assert ran_alone == [], "ran from the console without a second person's approval"


def test_T37_an_approved_drop_runs_only_on_the_database_it_was_asked_for(client, sqlite_target, tmp_path):  # noqa: F811
    """The request names a connection, not a database: once an administrator points the connection at another
    database (staging -> production), approving drops the table of the same name and definition there."""
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))  # alice saw and asked about the staging table
    production = tmp_path / "production.sqlite3"
    with sqlite3.connect(production) as raw:
        raw.executescript("CREATE TABLE people (id INTEGER PRIMARY KEY, label VARCHAR(20) NOT NULL);"
                          "INSERT INTO people VALUES (1, 'precious');")
    raw.close()
    update_connection(None, None, t.connection, sqlite_path=str(production))
    signed(HttpsClient(), dropper(t, "bob")).post(decide_url(approval), {"decision": "approve"})
    with sqlite3.connect(production) as raw:
        left = [name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    raw.close()
    assert left == ["people"], "a request made about one database dropped a table of another"
    assert status_of(approval) != ApprovalStatus.EXECUTED


# --- T31 / T20: a column hidden from the approver -----------------------------------------------------------
def test_T31_a_drop_column_request_does_not_show_a_column_hidden_from_the_approver(client, target):  # noqa: F811
    t = target
    approval = ask_to_drop_amount(t, client)
    page = signed(HttpsClient(), hides_amount(t)).get(APPROVALS).content.decode()
    assert "amount" not in page, f"the approvals page names a column this user's role hides (#{approval.pk})"


def test_T20_an_approver_cannot_approve_dropping_a_column_hidden_from_them(client, target):  # noqa: F811
    """Their alter grant would not let them drop that column themselves: it must not let them approve it."""
    t = target
    approval = ask_to_drop_amount(t, client)
    response = signed(HttpsClient(), hides_amount(t)).post(decide_url(approval), {"decision": "approve"})
    assert "amount" in columns_of(t, "things") and status_of(approval) == ApprovalStatus.PENDING
    assert response.status_code == 403


# --- T33: the change's own event says it was approved, and by whom -------------------------------------------
def test_T33_the_drop_event_of_an_approved_request_names_the_approval_and_the_approver(client, sqlite_target):  # noqa: F811
    """schema.table_dropped carries bob's IP, user agent and session but names only alice: the event itself must
    say that it ran on approval, which one, and who approved it (the failure event already names the approval)."""
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    signed(HttpsClient(), dropper(t, "bob")).post(decide_url(approval), {"decision": "approve"})
    assert status_of(approval) == ApprovalStatus.EXECUTED
    [ddl] = AuditEvent.objects.filter(action=drop.TABLE_DROPPED)
    assert ddl.details.get("approval_id") == approval.pk
    assert ddl.details.get("approved_by") == "bob"
