"""The two-person rule for dropping and emptying tables (issue 5): request, approve, run; and every refusal.

Every test goes through HTTP with two users on a real engine and checks what the database really
holds afterwards. Rows: T37 (a second approver per role, nothing runs before approval, expiry),
T20 (who may decide, self-approval refused, checked at every POST), T33 (each decision one
audit event, the change its own).
"""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from bastion.access.models import Action, Grant, RoleOptions
from bastion.access.roles import add_grant, remove_grant, set_two_person_rule
from bastion.audit.models import AuditEvent, Outcome
from bastion.schema_editor import approvals, drop
from bastion.schema_editor.models import ApprovalRequest, ApprovalStatus
from tests.conftest import STRONG_PASSWORD, HttpsClient
from tests.engines import postgresql_target, sqlite_target, target  # noqa: F401
from tests.test_schema_editor_drop import count, drop_url, dropper, make_user, people, shown_sql, signed, tables

pytestmark = pytest.mark.django_db

APPROVALS = "/approvals/"


# --- helpers -------------------------------------------------------------------------------------------
def requester(t: Any, operations: tuple[str, ...] = (approvals.DROP, approvals.EMPTY), username: str = "alice"):
    """A dropper whose role makes ``operations`` wait for a second person."""
    user = dropper(t, username)
    set_two_person_rule(None, None, user.groups.get(), operations)
    return user


def decide_url(approval: ApprovalRequest) -> str:
    return f"{APPROVALS}{approval.pk}/"


def ask(t: Any, client: Any, user: Any, action: str = "drop", name: str = "people") -> ApprovalRequest:
    """``user`` asks, through the drop page, to drop (or empty) ``name``; the request made."""
    response = signed(client, user).post(drop_url(t, name), {"action": action, "name": name})
    assert response.status_code == 302 and response["Location"] == APPROVALS, response.content[:2000]
    return ApprovalRequest.objects.get(requester=user, table=name, operation=action)


def other_client() -> HttpsClient:
    return HttpsClient()


def events(*actions: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=actions).order_by("seq"))


def schema_events() -> list[tuple[str, str]]:
    return [(e.action, e.outcome) for e in AuditEvent.objects.filter(action__startswith="schema.").order_by("seq")]


def followed_text(client: Any, response: Any) -> str:
    assert response.status_code == 302
    return client.get(response["Location"]).content.decode()


def rule_of(role: Group) -> list[str]:
    options = RoleOptions.objects.filter(role=role).first()
    return options.two_person_operations() if options else []


def ticked(page: str) -> list[str]:
    """The operations the role page's two-person form shows ticked."""
    return re.findall(r'<input type="checkbox" name="operations" value="(\w+)"[^>]*\bchecked\b', page)


def status_of(approval: ApprovalRequest) -> str:
    approval.refresh_from_db()
    return approval.status


# --- the whole flow on every engine ----------------------------------------------------------------------
def test_T37_T33_drop_waits_for_a_second_person_then_runs_exactly_as_shown(client, target):  # noqa: F811
    t = target
    people(t)
    alice = requester(t)
    page = signed(client, alice).get(drop_url(t, "people")).content.decode()
    assert "needs another person's approval" in page and "within 24 hours" in page and "Ask for approval" in page
    shown = shown_sql(page)["drop"]

    approval = ask(t, client, alice)
    assert "people" in tables(t) and count(t, "people") == 3  # nothing ran
    assert approval.status == ApprovalStatus.PENDING and approval.statements == [shown]
    assert approval.expires_at - approval.created_at == timedelta(hours=24)
    [requested] = events(approvals.REQUESTED)
    assert requested.actor == "alice" and requested.details["statements"] == [shown]
    assert requested.details["approval_id"] == approval.pk and requested.details["table"] == "people"
    assert schema_events() == [(approvals.REQUESTED, Outcome.SUCCESS)]
    own_page = client.get(APPROVALS).content.decode()
    assert "Waiting for approval" in own_page and "Nothing waits for you" in own_page

    bob = dropper(t, "bob")
    c2 = signed(other_client(), bob)
    listing = c2.get(APPROVALS).content.decode()
    assert f'id="approval-{approval.pk}"' in listing and shown in listing.replace("&quot;", '"').replace("&#x27;", "'")
    assert 'waiting for you</span>' in listing  # the navigation's count
    response = c2.post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302 and response["Location"] == APPROVALS
    assert "people" not in tables(t)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXECUTED and approval.decided_by == bob
    assert approval.message == "Table “people” dropped."
    assert schema_events() == [(approvals.REQUESTED, Outcome.SUCCESS), (approvals.APPROVED, Outcome.SUCCESS),
                               (drop.TABLE_DROPPED, Outcome.SUCCESS)]
    decision, ddl = events(approvals.APPROVED, drop.TABLE_DROPPED)
    assert decision.actor == "bob" and decision.details["approved_by"] == "bob"
    assert decision.details["requested_by"] == "alice" and decision.details["approval_id"] == approval.pk
    assert ddl.after["ddl"] == shown and ddl.actor == "alice"  # run under the requester's grant ...
    assert ddl.request_id == decision.request_id != ""  # ... in the approver's request
    assert "Approved and done" in client.get(APPROVALS).content.decode()


def test_T37_empty_waits_and_runs_once_approved(client, target):  # noqa: F811
    t = target
    people(t)
    alice = requester(t, (approvals.EMPTY,))
    # Only emptying needs approval here: dropping the other table runs at once.
    people(t, "scratch")
    assert signed(client, alice).post(drop_url(t, "scratch"), {"action": "drop", "name": "scratch"}).status_code == 302
    assert "scratch" not in tables(t)
    approval = ask(t, client, alice, "empty")
    assert count(t, "people") == 3
    c2 = signed(other_client(), dropper(t, "bob"))
    response = c2.post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302
    assert "people" in tables(t) and count(t, "people") == 0
    assert status_of(approval) == ApprovalStatus.EXECUTED and "emptied (3 rows deleted)" in approval.message
    assert [e.action for e in events(approvals.APPROVED, drop.TABLE_EMPTIED)] == [approvals.APPROVED,
                                                                                 drop.TABLE_EMPTIED]


def test_T37_a_table_changed_since_the_request_is_not_dropped(client, target):  # noqa: F811
    t = target
    people(t)
    approval = ask(t, client, requester(t))
    t.run(f"ALTER TABLE {t.table('people')} ADD COLUMN extra INTEGER")
    c2 = signed(other_client(), dropper(t, "bob"))
    response = c2.post(decide_url(approval), {"decision": "approve"})
    assert "The table changed since the request" in followed_text(c2, response)
    assert "people" in tables(t) and count(t, "people") == 3
    assert status_of(approval) == ApprovalStatus.FAILED and "changed since the request" in approval.message
    [decision] = events(approvals.APPROVED)
    assert decision.outcome == Outcome.FAILURE and "changed" in decision.details["reason"]
    assert not events(drop.TABLE_DROPPED)


def test_T37_a_change_behind_the_reflection_cache_is_seen(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    signed(other_client(), dropper(t, "bob")).get(APPROVALS)  # the cache holds the table as it was
    with sqlite3.connect(t.sqlite_path) as raw:  # changed outside Bastion: its cache does not know
        raw.execute("CREATE INDEX people_label ON people (label)")
    raw.close()
    response = signed(other_client(), dropper(t, "carol")).post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.FAILED


# --- who may decide ----------------------------------------------------------------------------------------
def test_T20_T37_self_approval_is_refused_and_audited(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    alice = requester(t)
    approval = ask(t, client, alice)
    assert f'id="approval-{approval.pk}"' not in client.get(APPROVALS).content.decode()  # not offered to her
    for decision in ("approve", "reject"):
        response = client.post(decide_url(approval), {"decision": decision})
        assert response.status_code == 403 and "cannot decide your own request" in response.content.decode()
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.PENDING
    denied = events(approvals.APPROVED, approvals.REJECTED)
    assert [(e.action, e.outcome, e.actor) for e in denied] == [(approvals.APPROVED, Outcome.DENIED, "alice"),
                                                                (approvals.REJECTED, Outcome.DENIED, "alice")]
    # exactly one event per refused POST: the middleware's generic request.denied is not added
    assert not AuditEvent.objects.filter(action="request.denied").exists()


def test_T20_T37_an_approver_without_the_grant_is_refused(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    people(t, "other")
    approval = ask(t, client, requester(t))
    viewer = make_user(t, "victor", [(Action.VIEW, ""), (Action.ALTER, ""), (Action.DROP, "other")])
    c2 = signed(other_client(), viewer)
    assert f'id="approval-{approval.pk}"' not in c2.get(APPROVALS).content.decode()
    for decision in ("approve", "reject", "cancel"):
        assert c2.post(decide_url(approval), {"decision": decision}).status_code == 403
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.PENDING
    assert {(e.outcome, e.actor) for e in events(approvals.APPROVED, approvals.REJECTED, approvals.CANCELLED)} == {
        (Outcome.DENIED, "victor")}


def test_T37_a_manager_without_the_drop_grant_may_approve(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    managers = Group.objects.create(name="managers")
    add_grant(None, None, managers, Action.MANAGE)
    maria = get_user_model().objects.create_user("maria", password=STRONG_PASSWORD)
    maria.groups.add(managers)
    response = signed(other_client(), maria).post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302
    assert "people" not in tables(t) and status_of(approval) == ApprovalStatus.EXECUTED


def test_T37_approving_needs_a_recent_reauthentication(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    c2 = signed(other_client(), dropper(t, "bob"), recent=False)
    response = c2.post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/?next=")
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.PENDING
    assert schema_events() == [(approvals.REQUESTED, Outcome.SUCCESS)]


def test_T37_the_requester_must_still_hold_the_grant(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    alice = requester(t)
    approval = ask(t, client, alice)
    remove_grant(None, None, Grant.objects.get(role__user=alice, action=Action.DROP))
    response = signed(other_client(), dropper(t, "bob")).post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.FAILED
    assert "no longer holds the grant" in approval.message


# --- expiry, rejection, cancelling ---------------------------------------------------------------------------
def test_T37_an_expired_request_cannot_be_approved_and_is_marked_once(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    ApprovalRequest.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    c2 = signed(other_client(), dropper(t, "bob"))
    assert f'id="approval-{approval.pk}"' not in c2.get(APPROVALS).content.decode()
    assert 'data-status="expired"' in client.get(APPROVALS).content.decode()  # shown as expired to the requester
    assert status_of(approval) == ApprovalStatus.PENDING  # ... without a GET writing anything
    response = c2.post(decide_url(approval), {"decision": "approve"})
    assert "expired" in followed_text(c2, response)
    assert "people" in tables(t) and count(t, "people") == 3
    assert status_of(approval) == ApprovalStatus.EXPIRED
    assert [(e.action, e.actor) for e in events(approvals.EXPIRED)] == [(approvals.EXPIRED, "bob")]
    again = c2.post(decide_url(approval), {"decision": "approve"})
    assert again.status_code == 302 and "people" in tables(t)
    assert len(events(approvals.EXPIRED)) == 1  # audited once
    assert [(e.action, e.outcome) for e in events(approvals.APPROVED)] == [(approvals.APPROVED, Outcome.DENIED)]


def test_T37_expiry_follows_the_configured_time(client, sqlite_target, settings):  # noqa: F811
    t = sqlite_target
    people(t)
    settings.SCHEMA_APPROVAL_SECONDS = 3600
    approval = ask(t, client, requester(t))
    assert approval.expires_at - approval.created_at == timedelta(hours=1)
    with pytest.MonkeyPatch.context() as patch:  # an hour and a minute later (Django's clock, no sleeping)
        later = timezone.now() + timedelta(minutes=61)
        patch.setattr(timezone, "now", lambda: later)
        assert approval.is_expired()
        response = signed(other_client(), dropper(t, "bob")).post(decide_url(approval), {"decision": "approve"})
    assert response.status_code == 302
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.EXPIRED


def test_T37_rejected_requests_do_not_run(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    bob = dropper(t, "bob")
    c2 = signed(other_client(), bob)
    response = c2.post(decide_url(approval), {"decision": "reject", "reason": "  keep it,\n we need it  "})
    assert response.status_code == 302
    assert status_of(approval) == ApprovalStatus.REJECTED and approval.message == "keep it, we need it"
    assert approval.decided_by == bob
    [rejected] = events(approvals.REJECTED)
    assert rejected.outcome == Outcome.SUCCESS and rejected.details["reason"] == "keep it, we need it"
    c3 = signed(other_client(), dropper(t, "carol"))
    assert "no longer waits" in followed_text(c3, c3.post(decide_url(approval), {"decision": "approve"}))
    assert "people" in tables(t) and count(t, "people") == 3
    assert "Rejected" in client.get(APPROVALS).content.decode()


def test_T37_the_requester_cancels_and_nobody_can_approve_it_after(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    assert 'value="cancel"' in client.get(APPROVALS).content.decode()
    assert client.post(decide_url(approval), {"decision": "cancel"}).status_code == 302
    assert status_of(approval) == ApprovalStatus.CANCELLED
    assert [(e.outcome, e.actor) for e in events(approvals.CANCELLED)] == [(Outcome.SUCCESS, "alice")]
    c2 = signed(other_client(), dropper(t, "bob"))
    c2.post(decide_url(approval), {"decision": "approve"})
    assert "people" in tables(t) and status_of(approval) == ApprovalStatus.CANCELLED
    assert not events(drop.TABLE_DROPPED)


def test_T37_asking_twice_for_the_same_change_is_refused(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    alice = requester(t)
    ask(t, client, alice)
    response = client.post(drop_url(t, "people"), {"action": "drop", "name": "people"})
    assert response.status_code == 400 and "already asked" in response.content.decode()
    assert ApprovalRequest.objects.count() == 1 and len(events(approvals.REQUESTED)) == 1


def test_T37_a_request_that_could_never_run_is_not_sent(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    t.run("CREATE TABLE child (id INTEGER PRIMARY KEY, person INTEGER REFERENCES people(id) ON DELETE CASCADE)")
    response = signed(client, requester(t)).post(drop_url(t, "people"), {"action": "drop", "name": "people"})
    assert response.status_code == 400 and "would also change other tables" in response.content.decode()
    assert not ApprovalRequest.objects.exists()


def test_T20_a_bad_decision_or_unknown_request(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    approval = ask(t, client, requester(t))
    c2 = signed(other_client(), dropper(t, "bob"))
    assert c2.post(decide_url(approval), {"decision": "run"}).status_code == 400
    assert c2.post(f"{APPROVALS}{approval.pk + 100}/", {"decision": "approve"}).status_code == 404
    assert c2.get(decide_url(approval)).status_code == 405
    assert status_of(approval) == ApprovalStatus.PENDING


# --- the role setting ----------------------------------------------------------------------------------------
def test_T33_T37_the_admin_sets_the_two_person_rule_on_the_role_page(client, admin, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    user = dropper(t, "dora")
    role = user.groups.get()
    assert rule_of(role) == []  # off by default
    assert not approvals.needed(user, t.connection, approvals.DROP)
    client.force_login(admin)
    page = client.get(f"/admin/roles/{role.pk}/").content.decode()
    assert f'action="/admin/roles/{role.pk}/two-person/"' in page and 'value="drop_column"' in page
    assert ticked(page) == []
    response = client.post(f"/admin/roles/{role.pk}/two-person/", {"operations": ["drop", "drop_column"]})
    assert response.status_code == 302 and response["Location"].endswith("#two-person")
    [event] = events("role.two_person_rule_updated")
    assert event.actor == admin.username and event.target == role.name
    assert event.before == {"two_person": []} and event.after == {"two_person": ["drop", "drop_column"]}
    assert approvals.needed(user, t.connection, approvals.DROP)
    assert approvals.needed(user, t.connection, approvals.DROP_COLUMN)
    assert not approvals.needed(user, t.connection, approvals.EMPTY)
    page = client.get(f"/admin/roles/{role.pk}/").content.decode()
    assert ticked(page) == ["drop", "drop_column"]
    assert client.post(f"/admin/roles/{role.pk}/two-person/", {"operations": ["everything"]}).status_code == 400
    assert len(events("role.two_person_rule_updated")) == 1


def test_T20_only_managers_set_the_two_person_rule(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    user = dropper(t, "dora")
    role = user.groups.get()
    client.force_login(user)
    assert client.post(f"/admin/roles/{role.pk}/two-person/", {"operations": ["drop"]}).status_code == 403
    assert rule_of(role) == []


def test_T37_any_of_the_users_roles_asks_for_approval(sqlite_target):  # noqa: F811
    t = sqlite_target
    user = dropper(t, "dora")
    strict = Group.objects.create(name="strict")
    RoleOptions.objects.create(role=strict)
    user.groups.add(strict)
    assert approvals.needed_operations(user) == frozenset()
    set_two_person_rule(None, None, strict, [approvals.EMPTY])
    assert approvals.needed_operations(user) == {approvals.EMPTY}
    with pytest.raises(ValueError):
        approvals.needed(user, t.connection, "truncate")
