"""T20 matrix: every URL pattern x {anonymous, no grants, Viewer, Editor, admin}.

Every pattern Django resolves is included (tests.urlwalk), so a new view joins
the matrix by existing. Its expected outcomes come from its declaration:

    declaration        anonymous   no grants   Viewer*    Editor*    admin
    public             allowed     allowed     allowed    allowed    allowed
    signed_in          login       allowed     allowed    allowed    allowed
    requires(A, R)     login       403         A in V**   A in E**   allowed

    *  Viewer and Editor hold their templates (bastion.access.roles.TEMPLATES)
       on connection 1, the id every sample URL uses; nothing elsewhere.
    ** allowed if A is one of the template's actions and R lies inside
       connection 1; otherwise 403. Global actions (manage, audit_view) -> 403.

"login" is a redirect to the login page with ?next=; "allowed" is anything
but 401/403/5xx or a login redirect. A 405 (method refused before the view
runs) is accepted in place of any outcome. After every GET, and after every
POST that must be refused, the metadata database is unchanged (every table
but sessions, cache and the audit log, which records the refusals).
"""

from __future__ import annotations

import hashlib
from functools import cache
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection
from django.test import RequestFactory
from django.urls import ResolverMatch, resolve, reverse

from bastion.access.declarations import declaration_for
from bastion.access.decorators import Declaration, Kind, declared_permission
from bastion.access.policy import Resource
from bastion.access.roles import EDITOR, TEMPLATES, VIEWER, grant_template
from bastion.audit.models import AuditEvent
from bastion.connections.models import Connection
from tests.conftest import STRONG_PASSWORD
from tests.urlwalk import all_url_paths

pytestmark = pytest.mark.django_db

URLS = all_url_paths()
GRANTED_CONNECTION = 1  # tests.urlwalk fills every id parameter with 1
PERSONAS = ("anonymous", "no_grants", "viewer", "editor", "admin")
PERSONA_ROLE = {"viewer": VIEWER, "editor": EDITOR}
PERSONA_ACTIONS = {"no_grants": frozenset(), "viewer": frozenset(TEMPLATES[VIEWER]),
                   "editor": frozenset(TEMPLATES[EDITOR])}
# Sessions, the cache and the audit log change on purpose; so does the store of form input kept
# when a session has ended (an anonymous POST to a row form is kept for its owner's next login).
UNWATCHED_TABLES = {"django_session", "bastion_cache", AuditEvent._meta.db_table, "accounts_pendinginput",
                    # a session's address and last activity (bastion.accounts.sessions), like django_session
                    "usersessions_usersession"}

ALLOWED, LOGIN, DENIED = "allowed", "login", "denied"
# Public pages whose normal answer is an error status, by path: allauth's "single sign-on failed" page
# answers 401 by design (the callback shows it after a refused round trip); it lets nobody in to anything.
ERROR_PAGES = {reverse("socialaccount_login_error"): 401}

# Bastion's own views open to anybody or to every signed-in user, by URL name.
# The matrix derives its expectations from declarations, so a view declared
# too openly would pass it: every such view must be listed here, on purpose.
# (allauth's views are listed in bastion.access.declarations.THIRD_PARTY.)
REVIEWED_OPEN_VIEWS = {
    "csp_report": Kind.PUBLIC,  # browsers post violation reports without a session
    "home": Kind.SIGNED_IN,  # lists only what policy.visible_connections gives the user
    # The QR code of the user's own enrolment secret, read from their session (404 when none); read-only.
    "mfa_totp_qr": Kind.SIGNED_IN,
    "approvals:list": Kind.SIGNED_IN,  # lists only requests the user made or may decide (approvals.may_decide)
    "approvals:decide": Kind.SIGNED_IN,  # POST only; approve/reject/cancel check the user per request, audited
    # 404 unless policy.visible_connection_ids has it; lists only policy.visible_tables (a user
    # holding grants on single tables has no connection-wide grant to declare).
    "explorer:database": Kind.SIGNED_IN,
    # Jobs: 404 unless the user owns the job or holds manage (jobs.services.visible_job); cancel and download
    # are POSTs checked per job (download: the owner only).
    "jobs:list": Kind.SIGNED_IN,
    "jobs:detail": Kind.SIGNED_IN,
    "jobs:status": Kind.SIGNED_IN,
    "jobs:cancel": Kind.SIGNED_IN,
    "jobs:download": Kind.SIGNED_IN,
    # POST only; 404 unless the session is the user's own (bastion.accounts.session_views), audited
    "usersession_end": Kind.SIGNED_IN,
    # E-mailed links (bastion.accounts.links): do anything only with a valid signed, expiring, single-use
    # token naming a pending invitee / a registered, not yet activated account; else one "not valid" page.
    "invitation_accept": Kind.PUBLIC,
    "account_activate": Kind.PUBLIC,
}


@cache
def password_hash() -> str:
    return make_password(STRONG_PASSWORD)  # Argon2 once per run, not once per persona


def persona_user(persona: str, request: pytest.FixtureRequest):
    if persona == "anonymous":
        return None
    if persona == "admin":
        return request.getfixturevalue("admin")  # the real first admin: superuser in the Admin role
    user = get_user_model().objects.create_user(persona, password=None)
    user.password = password_hash()
    user.save(update_fields=["password"])
    if persona in PERSONA_ROLE:
        role = Group.objects.get(name=PERSONA_ROLE[persona])
        user.groups.add(role)
    return user


@pytest.fixture
def connections():
    granted = Connection.objects.create(pk=GRANTED_CONNECTION, name="granted", engine="sqlite",
                                        sqlite_path="/srv/granted.db")
    Connection.objects.create(pk=GRANTED_CONNECTION + 1, name="elsewhere", engine="sqlite",
                              sqlite_path="/srv/elsewhere.db")
    for name in (VIEWER, EDITOR):
        grant_template(None, None, Group.objects.get(name=name), granted)
    return granted


def fingerprint() -> dict[str, str]:
    """A digest of every watched table's rows."""
    digests = {}
    with connection.cursor() as cursor:
        for table in sorted(set(connection.introspection.table_names()) - UNWATCHED_TABLES):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (name from introspection)
            rows = sorted(repr(row) for row in cursor.fetchall())
            digests[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


def resource_of(declaration: Declaration, match: ResolverMatch, path: str, user) -> Resource:
    request = RequestFactory().get(path)
    request.user = user
    return declaration.resource_for(request, match.kwargs)


def expected(declaration: Declaration, persona: str, resource: Resource | None) -> str:
    if declaration.kind == Kind.PUBLIC:
        return ALLOWED
    if persona == "anonymous":
        return LOGIN
    if declaration.kind == Kind.SIGNED_IN or persona == "admin":
        return ALLOWED
    granted = declaration.action in PERSONA_ACTIONS[persona] and resource.connection_id == GRANTED_CONNECTION
    return ALLOWED if granted else DENIED


def is_login_redirect(response, path: str) -> bool:
    if response.status_code != 302:
        return False
    target = urlparse(response["Location"])
    return target.path == reverse("account_login") and parse_qs(target.query).get("next") == [path]


def outcome_problem(response, want: str, path: str, signed_in: bool) -> str | None:
    status = response.status_code
    if status == 405 or ERROR_PAGES.get(path) == status:
        return None
    if want == LOGIN and not is_login_redirect(response, path):
        return f"expected a login redirect, got {status} {response.get('Location', '')}"
    if want == DENIED and status != 403:
        return f"expected 403, got {status}"
    if want == ALLOWED and (status >= 500 or status in (401, 403) or (signed_in and is_login_redirect(response,
                                                                                                       path))):
        return f"expected to be let in, got {status} {response.get('Location', '')}"
    return None


def test_T20_every_url_pattern_declares_its_permission():
    missing = [f"{name or '?'} {path} -> {resolve(path).func.__module__}.{resolve(path).func.__name__}"
               for name, path in URLS if declaration_for(resolve(path)) is None]
    assert missing == [], "views without a declared permission (bastion.access.decorators):\n" + "\n".join(missing)


def test_T20_views_open_to_everybody_or_every_user_are_reviewed():
    unreviewed = []
    for _name, path in URLS:
        match = resolve(path)
        declaration = declared_permission(match.func)  # the view's own, not a THIRD_PARTY entry
        if declaration is None or declaration.kind == Kind.REQUIRES:
            continue
        if REVIEWED_OPEN_VIEWS.get(match.view_name) != declaration.kind:
            unreviewed.append(f"{match.view_name} {path}: {declaration.kind}")
    assert unreviewed == [], "open views missing from REVIEWED_OPEN_VIEWS:\n" + "\n".join(unreviewed)


def test_T20_the_declaration_check_catches_an_undeclared_view():
    def new_view(request):
        raise AssertionError("never called")

    assert declaration_for(ResolverMatch(new_view, (), {}, url_name="new_view")) is None


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("name", "path"), URLS, ids=[path for _name, path in URLS])
def test_T20_matrix(name, path, persona, client, connections, request):
    match = resolve(path)
    declaration = declaration_for(match)
    assert declaration is not None, f"{path} ({name}) declares no permission"
    user = persona_user(persona, request)
    if user is not None:
        client.force_login(user)
    resource = resource_of(declaration, match, path, user) if declaration.kind == Kind.REQUIRES else None
    want = expected(declaration, persona, resource)
    for method in ("get", "post"):
        before = fingerprint()
        response = getattr(client, method)(path)
        problem = outcome_problem(response, want, path, signed_in=user is not None)
        assert problem is None, f"{method.upper()} {path} as {persona}: {problem}"
        if method == "get" or want != ALLOWED:
            changed = [t for t, digest in fingerprint().items() if before.get(t) != digest]
            assert changed == [], f"{method.upper()} {path} as {persona} changed {changed}"
