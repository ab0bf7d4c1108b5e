"""Registering, changing, testing and removing target databases.

Each change is one transaction with exactly one audit event; no event, log
line or message ever holds a password (T30): audit snapshots say only whether
a password is set. A stored password is only ever sent to the server it was
saved for: when an edit changes where it would go (engine, host, port, user,
TLS settings), saving or testing needs the password typed again. Every test is
audited ("connection.tested"). Views call these after checking the ``manage``
permission.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from sqlalchemy import Engine as SAEngine
from sqlalchemy import func, literal, select, table

from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import reflection
from bastion.connections.crypto import decrypt_secret, encrypt_secret
from bastion.connections.engines import build_engine, dispose_engine
from bastion.connections.errors import safe_message
from bastion.connections.models import Connection, Engine
from bastion.connections.validation import EDITABLE_FIELDS, apply_fields, server_identity, validate
from bastion.logs import get_logger

log = get_logger("bastion.connections")


@dataclass(frozen=True)
class TestResult:
    """What "Test connection" reports: safe to show as is."""

    __test__ = False  # not a pytest test class, despite the name

    ok: bool
    message: str
    server_version: str = ""


def snapshot(connection: Connection) -> dict[str, Any]:
    """The audited view of a connection: every setting, and only whether a password is set."""
    values = {name: getattr(connection, name) for name in EDITABLE_FIELDS}
    values["has_password"] = bool(connection.password_encrypted)
    return values


def _actor_user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def _set_password(connection: Connection, password: str) -> None:
    # A file database has no password; a server connection may have none (trust auth).
    connection.password_encrypted = encrypt_secret(password) if password and connection.engine != Engine.SQLITE \
        else ""


SERVER_CHANGED = ("Type the password again: the server settings changed, and the stored password is only ever "
                  "sent to the server it was saved for.")


def _choose_password(draft: Connection, stored: Connection, password: str | None, clear_password: bool) -> None:
    """Set ``draft``'s password: typed, removed, or kept when it still goes to ``stored``'s server.

    ``draft`` is validated (normalised) already; ``stored`` is the saved row it was made from.
    Raises ValidationError on the password field rather than reuse a stored password elsewhere (T30).
    """
    if clear_password or draft.engine == Engine.SQLITE:
        draft.password_encrypted = ""
    elif password:
        _set_password(draft, password)
    elif stored.password_encrypted and server_identity(draft) != server_identity(stored):
        raise ValidationError({"password": [SERVER_CHANGED]})
    else:
        draft.password_encrypted = stored.password_encrypted


def _duplicate_name() -> ValidationError:
    return ValidationError({"name": ["A connection with this name already exists."]})


def create_connection(actor: Any, request: HttpRequest | None, **fields: Any) -> Connection:
    """Register a target database. ``fields``: the model's settings plus ``password`` (plain text)."""
    password = fields.pop("password", "") or ""
    connection = Connection(created_by=_actor_user(actor))
    apply_fields(connection, fields)
    validate(connection)  # before the transaction: it may wait for DNS
    _set_password(connection, password)
    try:
        with transaction.atomic():
            connection.save()
            record("connection.created", request=request, actor=actor, target=connection.name,
                   after=snapshot(connection))
    except IntegrityError:
        raise _duplicate_name() from None
    return connection


def update_connection(actor: Any, request: HttpRequest | None, connection: Connection, *,
                      password: str | None = None, clear_password: bool = False, **fields: Any) -> Connection:
    """Change settings. An empty ``password`` keeps the stored one; ``clear_password`` removes it.

    The stored password is kept only while it still goes to the same server: with
    the engine, host, port, user or a TLS setting changed, an empty ``password``
    is refused (ValidationError on "password") instead (T30).

    Refused with a non-field error if someone else changed the connection since
    ``connection`` was loaded, so one administrator cannot silently undo another's edit.
    """
    stored = Connection.objects.get(pk=connection.pk)
    draft = Connection.objects.get(pk=connection.pk)
    loaded_at = connection.updated_at or draft.updated_at
    before = snapshot(draft)
    apply_fields(draft, fields)
    validate(draft)
    _choose_password(draft, stored, password, clear_password)
    password_changed = draft.password_encrypted != stored.password_encrypted
    try:
        with transaction.atomic():
            current = Connection.objects.select_for_update().get(pk=draft.pk)
            if current.updated_at != loaded_at:
                raise ValidationError({NON_FIELD_ERRORS: [
                    "Someone else changed this connection meanwhile; reload it and make your change again."]})
            draft.save()
            after = snapshot(draft)
            changed = sorted(name for name in after if after[name] != before[name])
            record("connection.updated", request=request, actor=actor, target=draft.name,
                   details={"changed": changed, "password_changed": password_changed},
                   before=before, after=after)
    except IntegrityError:
        raise _duplicate_name() from None
    dispose_engine(draft)
    reflection.invalidate(draft)
    return draft


def set_enabled(actor: Any, request: HttpRequest | None, connection: Connection, enabled: bool) -> Connection:
    """Switch a connection on or off; off closes its pooled connections in this process."""
    with transaction.atomic():
        current = Connection.objects.select_for_update().get(pk=connection.pk)
        before = snapshot(current)
        current.enabled = enabled
        current.save(update_fields=["enabled", "updated_at"])
        record("connection.enabled" if enabled else "connection.disabled", request=request, actor=actor,
               target=current.name, before=before, after=snapshot(current))
    dispose_engine(current)
    return current


def delete_connection(actor: Any, request: HttpRequest | None, connection: Connection, *,
                      confirmation: str) -> None:
    """Remove a connection; ``confirmation`` must be its name, typed by the administrator."""
    if confirmation.strip() != connection.name:
        raise ValidationError({"confirmation": ["Type the connection's name exactly to confirm."]})
    from bastion.access.models import Grant

    with transaction.atomic():
        current = Connection.objects.select_for_update().get(pk=connection.pk)
        before = snapshot(current)
        # The grants on it go with it (cascade): the event says which, for a later restore.
        before["grants"] = [
            {"role": g.role.name, "action": g.action, "schema": g.schema, "table": g.table, "column": g.column}
            for g in Grant.objects.filter(connection=current).select_related("role")]
        current.delete()
        record("connection.deleted", request=request, actor=actor, target=before["name"], before=before)
    current.pk = connection.pk  # delete() clears it; the caches are keyed by it
    dispose_engine(current)
    reflection.invalidate(current)


# --- testing ----------------------------------------------------------------------------------
def _server_version(engine: SAEngine) -> str:
    version = ".".join(str(part) for part in engine.dialect.server_version_info or ())
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    if engine.dialect.name == "postgresql":
        return f"PostgreSQL {version}"
    return f"{'MariaDB' if getattr(engine.dialect, 'is_mariadb', False) else 'MySQL'} {version}"


def test_connection(connection: Connection, *, password: str | None = None) -> TestResult:
    """Connect, run ``SELECT 1`` and report; never raises, never reveals a password.

    Works on unsaved drafts too (a form's "Test" button); ``password`` then
    stands in for the stored one. Uses a one-shot engine, not the shared pool.
    """
    secrets: list[str] = []
    try:
        if password is None and connection.password_encrypted:
            password = decrypt_secret(connection.password_encrypted)
        secrets = [password] if password else []
        engine = build_engine(connection, password=password or "", pooled=False)
    except Exception as exc:  # every failure, InvalidToken included, becomes a message
        return _failed(connection, exc, secrets)
    try:
        with engine.connect() as conn:
            # SQLite reads the schema lazily; counting it surfaces a schema Bastion cannot use.
            probe = select(func.count()).select_from(table("sqlite_master")) if connection.engine == Engine.SQLITE \
                else select(literal(1))
            conn.execute(probe).scalar_one()
        return TestResult(ok=True, message="Connected.", server_version=_server_version(engine))
    except Exception as exc:
        return _failed(connection, exc, secrets)
    finally:
        engine.dispose()


test_connection.__test__ = False  # type: ignore[attr-defined]  # a service, though pytest would collect the name


def _record_test(actor: Any, request: HttpRequest | None, target: str, result: TestResult, *,
                 form: bool, tested: Connection) -> None:
    record("connection.tested", request=request, actor=actor, target=target,
           outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
           details={"ok": result.ok, "message": result.message, "form": form}, after=snapshot(tested))


def test_saved_connection(actor: Any, request: HttpRequest | None, connection: Connection) -> TestResult:
    """The list page's "Test": the saved settings and password; audited."""
    result = test_connection(connection)
    _record_test(actor, request, connection.name, result, form=False, tested=connection)
    return result


def test_settings(actor: Any, request: HttpRequest | None, connection: Connection | None, *,
                  password: str | None = None, clear_password: bool = False, **fields: Any) -> TestResult:
    """A form's "Test connection": the typed settings, never saved; audited.

    ``connection`` is the saved connection being edited (None on the new page).
    Its stored password is used only when the typed settings still point at its
    server; otherwise ValidationError on "password", as when saving (T30).
    Raises ValidationError for settings that could not be saved either.
    """
    if connection is None:
        stored, draft = Connection(), Connection()
    else:
        stored = Connection.objects.get(pk=connection.pk)
        # A copy of the saved row, so the unique name check does not clash with itself.
        draft = Connection.objects.get(pk=connection.pk)
    apply_fields(draft, fields)
    validate(draft)
    _choose_password(draft, stored, password, clear_password)
    result = test_connection(draft)
    _record_test(actor, request, stored.name or draft.name, result, form=True, tested=draft)
    return result


test_saved_connection.__test__ = False  # type: ignore[attr-defined]
test_settings.__test__ = False  # type: ignore[attr-defined]


def _failed(connection: Connection, exc: BaseException, secrets: list[str]) -> TestResult:
    message = safe_message(exc, secrets)
    log.info("connection.test_failed", connection=connection.name, error=message, error_type=type(exc).__name__)
    return TestResult(ok=False, message=message)
