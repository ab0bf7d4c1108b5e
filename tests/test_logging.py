"""T35: log and audit records are structured; CR/LF in user data cannot forge a line."""

from __future__ import annotations

import json

import pytest

from bastion.audit.models import AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db
FORGED = "a\nINFO admin logged in\r\n{\"event\": \"login.success\", \"actor\": \"admin\"}"


def test_T35_newline_in_username_produces_one_event_and_one_line(client, json_lines):
    login(client, FORGED, "wrong-password-xx")
    events = list(AuditEvent.objects.filter(action="login.failed"))
    assert len(events) == 1 and events[0].details["username"] == FORGED
    lines = json_lines()
    records = [json.loads(line) for line in lines]  # every line is one whole JSON object
    audit = [r for r in records if r.get("event") == "audit" and r.get("action") == "login.failed"]
    assert len(audit) == 1 and audit[0]["details"]["username"] == FORGED
    assert not any(line.startswith("INFO admin") for line in lines)
    assert not any(r.get("event") == "login.success" for r in records)


def test_T35_every_line_carries_the_request_id(client, json_lines):
    response = client.get("/accounts/login/")
    request_lines = [json.loads(line) for line in json_lines()]
    assert request_lines and all(r["request_id"] == response["X-Request-ID"] for r in request_lines)


def test_T35_passwords_never_reach_the_log(client, json_lines, user):
    login(client, user.username, "wrong-but-secret-Passw0rd")
    login(client, user.username)
    text = "\n".join(json_lines())
    assert "wrong-but-secret-Passw0rd" not in text and "correct-Horse-battery-9" not in text
