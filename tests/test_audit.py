"""Audit core: append-only, hash-chained events (T33, T34) and the audit log page.

Also runs with PostgreSQL as the metadata database (`make test-postgres`).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction

from bastion.access.roles import AUDITOR
from bastion.audit.chain import GENESIS, verify_chain
from bastion.audit.models import AuditEvent, Outcome
from bastion.audit.services import record
from bastion.cli import main as bastion_cli
from tests.conftest import login

pytestmark = pytest.mark.django_db


def chain() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq"))


def three_events() -> None:
    record("test.one", target="a", details={"n": 1})
    record("test.two", target="b", details={"n": 2}, before={"x": "1.50"}, after={"x": 2})
    record("test.three", target="c", outcome=Outcome.FAILURE)


def drop_append_only_triggers() -> None:
    """What an attacker with database access would do first."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_change ON audit_auditevent")


def test_T34_events_form_a_verifiable_chain():
    three_events()
    events = chain()
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash
    report = verify_chain(events)
    assert report.ok and report.checked == 3


def test_T34_update_refused_by_database_trigger():
    three_events()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=2).update(action="nothing.happened")
    assert AuditEvent.objects.get(seq=2).action == "test.two"


def test_T34_delete_refused_by_database_trigger():
    three_events()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=2).delete()
    assert AuditEvent.objects.count() == 3


def test_T34_edited_row_is_named_by_verify(capsys):
    three_events()
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'nobody' WHERE seq = 2")
    assert bastion_cli(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "BROKEN at event #2" in err and "changed" in err


def test_T34_deleted_row_is_named_by_verify(capsys):
    three_events()
    drop_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = 2")
    assert bastion_cli(["audit", "verify"]) == 1
    assert "event #2 is missing" in capsys.readouterr().err


def test_T34_inserted_row_is_named_by_verify(capsys):
    three_events()
    drop_append_only_triggers()
    forged = AuditEvent.objects.get(seq=3)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = 3")
    forged.pk, forged.action = None, "test.forged"
    forged.save()
    record("test.after")
    assert bastion_cli(["audit", "verify"]) == 1
    assert "event #3" in capsys.readouterr().err


def test_T34_hash_key_matters():
    three_events()
    assert verify_chain(chain()).ok
    assert not verify_chain(chain(), key="another key entirely").ok


def test_T34_verify_ok_on_intact_chain(capsys):
    three_events()
    assert bastion_cli(["audit", "verify"]) == 0
    assert "3 events verified" in capsys.readouterr().out


def test_T33_event_records_who_what_when_where(client, user):
    login(client, user.username)
    event = AuditEvent.objects.get(action="login.success")
    assert (event.actor_id, event.actor, event.ip, event.outcome) == (user.pk, "alice", "127.0.0.1", "success")
    assert event.created_at.tzinfo is not None
    assert len(event.request_id) == 32


def test_T33_refused_requests_are_audited(client, user):
    login(client, user.username)
    assert client.get("/audit/").status_code == 403
    denied = AuditEvent.objects.get(action="request.denied")
    assert denied.outcome == "denied" and denied.target == "/audit/"
    assert denied.details == {"status": 403, "method": "GET"}


def test_T33_csrf_refusal_is_audited(user):
    from tests.conftest import HttpsClient

    strict = HttpsClient(enforce_csrf_checks=True)
    assert strict.post("/accounts/login/", {"login": "alice", "password": "x"}).status_code == 403
    assert AuditEvent.objects.filter(action="request.denied").count() == 1


def test_T33_no_code_path_updates_or_deletes_events():
    """The model API itself: saving an existing event or deleting it fails."""
    three_events()
    event = AuditEvent.objects.get(seq=1)
    event.action = "changed"
    with pytest.raises(DatabaseError), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError), transaction.atomic():
        event.delete()


# --- the audit log page ------------------------------------------------------------------------
def test_T20_audit_log_requires_login(client):
    response = client.get("/audit/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_T20_audit_log_visible_to_auditor_and_admin(client, user, admin):
    user.groups.add(Group.objects.get(name=AUDITOR))
    login(client, user.username)
    assert client.get("/audit/").status_code == 200
    from tests.conftest import HttpsClient

    admin_client = HttpsClient()
    login(admin_client, admin.username)
    assert admin_client.get("/audit/").status_code == 200


def test_audit_log_filters_by_actor_action_outcome_and_time(client, admin):
    login(client, admin.username)
    record("test.alpha", actor=admin)
    record("test.beta", outcome=Outcome.FAILURE)
    page = client.get("/audit/", {"action": "test.", "outcome": "failure"})
    assert [e.action for e in page.context["page"].events] == ["test.beta"]
    page = client.get("/audit/", {"actor": admin.username, "action": "test."})
    assert [e.action for e in page.context["page"].events] == ["test.alpha"]
    page = client.get("/audit/", {"since": "2999-01-01T00:00"})
    assert page.context["page"].events == []


def test_audit_log_keyset_pagination_walks_every_event_once(client, admin):
    login(client, admin.username)
    for i in range(120):
        record("test.bulk", target=str(i))
    seen, query = [], "?action=test.bulk"
    while query:
        page = client.get("/audit/" + query).context["page"]
        seen += [e.target for e in page.events]
        query = page.older_query
    assert seen == [str(i) for i in reversed(range(120))]
    back = client.get("/audit/" + client.get("/audit/?action=test.bulk").context["page"].older_query)
    newer = client.get("/audit/" + back.context["page"].newer_query).context["page"]
    assert [e.target for e in newer.events] == [str(i) for i in reversed(range(70, 120))]


def test_T03_audit_log_escapes_hostile_values(client, admin):
    login(client, admin.username)
    payload = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    record("test.xss", target=payload, details={"username": payload})
    body = client.get("/audit/").content.decode()
    assert "<script>alert(1)" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_T01_audit_log_filters_are_bound_parameters(client, admin):
    login(client, admin.username)
    record("test.one")
    for payload in ["' OR 1=1 --", "test.%' UNION SELECT * FROM accounts_user --", "%", "_"]:
        response = client.get("/audit/", {"actor": payload, "action": payload})
        assert response.status_code == 200
        assert response.context["page"].events == []


def test_T33_audit_log_page_itself_writes_nothing_on_get(client, admin):
    login(client, admin.username)
    before = AuditEvent.objects.count()
    client.get("/audit/")
    assert AuditEvent.objects.count() == before
