"""Where Bastion's settings come from.

Precedence, highest first: environment variables (``BASTION_<NAME>``), the TOML
file (``BASTION_CONFIG`` or ``<data dir>/bastion.toml``; keys are the lower-case
names without the prefix), then the defaults below. A secret may also be read
from a file named by ``BASTION_<NAME>_FILE`` so that it never sits in the
environment or in the repository.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "BASTION_"


class ConfigError(Exception):
    """A setting has a value Bastion cannot use; the message says which and why."""


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    kind: type = str
    help: str = ""
    secret: bool = False


# Every setting Bastion reads. The README table is generated from this list
# (`bastion config --markdown`), so the documentation cannot drift from the code.
OPTIONS: tuple[Option, ...] = (
    Option("data_dir", "./var", str, "Data directory: metadata database, keys, certificate."),
    Option("dev", False, bool, "Development mode: plain HTTP allowed, loud warnings. Never in production."),
    Option("debug", False, bool, "Django DEBUG pages (only honoured together with dev)."),
    Option("allowed_hosts", ["localhost", "127.0.0.1"], list, "Host names Bastion answers to."),
    Option("site_url", "https://127.0.0.1:8443", str, "Public base URL used in e-mailed links."),
    Option("secret_key", None, str, "Django SECRET_KEY (default: <data dir>/secret_key).", True),
    Option("audit_key", None, str, "HMAC key of the audit chain (default: <data dir>/audit_key).", True),
    Option("encryption_keys", None, str,
           "Fernet keys for secrets at rest, newest first, comma-separated "
           "(default: <data dir>/encryption_keys).", True),
    Option("db_engine", "sqlite", str, "Metadata database: sqlite or postgresql."),
    Option("db_name", None, str, "Metadata database name (sqlite: file path; default <data dir>/bastion.sqlite3)."),
    Option("db_host", "127.0.0.1", str, "Metadata database host (postgresql)."),
    Option("db_port", 5432, int, "Metadata database port (postgresql)."),
    Option("db_user", "", str, "Metadata database user (postgresql)."),
    Option("db_password", "", str, "Metadata database password (postgresql).", True),
    Option("redis_url", "", str,
           "Redis for cache, sessions and rate-limit counters (default: the metadata database)."),
    Option("session_idle_timeout", 1800, int, "Seconds of inactivity before a session ends."),
    Option("session_absolute_timeout", 43200, int, "Seconds after login when a session ends regardless."),
    Option("login_ip_limit", 5, int, "Failed logins from one IP within the window before refusals."),
    Option("login_ip_window", 60, int, "Window in seconds for the per-IP failure count."),
    Option("login_account_ip_limit", 5, int, "Failed logins for one account from one IP within 15 minutes."),
    Option("login_cooldown", 300, int, "Seconds a clipped IP or account/IP pair is refused."),
    Option("login_account_delay_after", 10, int,
           "Failures of one account (any IP) in an hour after which each attempt is slowed."),
    Option("login_max_delay", 5, int, "Longest slow-down in seconds for a much-attacked account."),
    Option("hsts_seconds", 31536000, int, "Strict-Transport-Security max-age."),
    Option("hsts_preload", False, bool, "Ask browsers to preload HSTS (domain owners only)."),
    Option("proxy_count", 0, int, "Trusted reverse proxies in front of Bastion (for X-Forwarded-For)."),
    Option("max_request_body_mb", 10, int, "Largest request body Bastion reads into memory."),
    Option("max_form_fields", 2000, int, "Most form fields accepted in one request."),
    Option("log_level", "INFO", str, "Log level: DEBUG, INFO, WARNING, ERROR."),
    Option("host", "127.0.0.1", str, "Address `bastion serve` listens on."),
    Option("port", 8443, int, "Port `bastion serve` listens on."),
    Option("tls_cert", None, str, "TLS certificate (default: <data dir>/tls/cert.pem)."),
    Option("tls_key", None, str, "TLS private key (default: <data dir>/tls/key.pem).", True),
    Option("workers", 0, int, "Server worker processes (0: from the CPU count)."),
    Option("http_redirect_port", 0, int,
           "Also listen for plain HTTP on this port and redirect every request to the HTTPS site URL (0: off)."),
    Option("query_timeout", 10, int, "Seconds a data page's query may run before it is stopped."),
    Option("bulk_reauth_rows", 100, int,
           "Deleting more rows than this at once asks for the password again (recent re-authentication)."),
    Option("console_timeout", 30, int,
           "Seconds a SQL console script (all its statements) may run before it is stopped."),
    Option("console_max_statements", 500, int, "Statements one console script may hold."),
    Option("console_max_rows", 10000, int,
           "Rows of one console result that can be paged through; the rest are not fetched (download for more)."),
    Option("console_max_result_mb", 20, int, "Megabytes of one console result page fetched at most."),
    Option("console_download_timeout", 600, int, "Seconds a console result download may run."),
    Option("console_history", 100, int, "Statements kept in each user's console history per connection."),
    Option("approval_hours", 24, int,
           "Hours a request for a second person's approval (two-person rule) stays open before it expires."),
    Option("drop_snapshot_max_rows", 10000, int,
           "Tables with at most this many rows keep their rows, compressed, in the audit store when dropped."),
    Option("drop_snapshot_max_mb", 20, int,
           "Megabytes of rows (as JSON, before compression) a drop snapshot holds at most."),
    Option("export_timeout", 600, int, "Seconds a table export may take to stream."),
    Option("export_reauth_rows", 100000, int,
           "Exporting more rows than this asks for the password again."),
    Option("export_egress_mb", 100, int,
           "Exports larger than this many megabytes are flagged as egress in the audit log."),
    Option("export_max_running", 3, int, "Exports one user may have running at once."),
    Option("import_max_mb", 500, int, "Megabytes an uploaded import file may have at most."),
    Option("import_max_rows", 10_000_000, int, "Rows one import may write at most."),
    Option("import_timeout", 3600, int, "Seconds an import may run (it is one transaction)."),
    Option("tasks_backend", "django_tasks_db.DatabaseBackend", str,
           "Django Tasks backend that queues background jobs (imports, exports): the metadata database by "
           "default; a Redis-backed one for several hosts."),
    Option("embedded_worker", True, bool,
           "`bastion serve` also runs one background-job worker; turn off when `bastion worker` runs apart."),
    Option("jobs_max_running", 2, int, "Background jobs (imports, exports) one user may have queued or running."),
    Option("job_file_hours", 24, int, "Hours an export job's file is kept for download before it is deleted."),
    Option("jobs_disk_reserve_mb", 1024, int,
           "Export jobs stop (keeping no file) when the data directory's disk has less free space than this."),
    Option("sqlite_roots", [], list,
           "Directories SQLite databases may be registered from (default: <data dir>/databases)."),
    Option("target_hosts_allowed", [], list,
           "Host names or networks (CIDR) target databases may be on; empty: any host except "
           "link-local and cloud-metadata addresses, which are always refused."),
    # E-mail, invitations, self-registration: SMTP when email_host is set, else files in <data dir>/mail.
    Option("email_host", "", str,
           "SMTP server for outgoing e-mail; empty: each message is written to a file in <data dir>/mail."),
    Option("email_port", 587, int, "SMTP port."),
    Option("email_use_tls", True, bool, "SMTP with STARTTLS (port 587). Not together with email_use_ssl."),
    Option("email_use_ssl", False, bool, "SMTP over implicit TLS (port 465); set email_use_tls=no with it."),
    Option("email_host_user", "", str, "SMTP user name (empty: no SMTP authentication)."),
    Option("email_host_password", "", str, "SMTP password.", True),
    Option("email_timeout", 10, int, "Seconds Bastion waits for the SMTP server before giving up."),
    Option("email_from", "bastion@localhost", str, "Sender address of Bastion's e-mails."),
    Option("password_reset_minutes", 60, int, "Minutes an e-mailed password reset link stays valid."),
    Option("invitation_days", 7, int, "Days an invitation or account activation link stays valid."),
    Option("self_registration", False, bool,
           "Anyone may register; the account stays inactive, without a role, until its e-mailed link is used."),
    # Single sign-on (OpenID Connect): off until oidc_issuer is set.
    Option("oidc_issuer", "", str,
           "OpenID Connect issuer URL of the identity provider (https); empty: single sign-on off."),
    Option("oidc_client_id", "", str, "Client id Bastion is registered with at the identity provider."),
    Option("oidc_client_secret", "", str, "Client secret for the identity provider.", True),
    Option("oidc_name", "single sign-on", str, "Label of the login button: \"Sign in with <name>\"."),
    Option("oidc_scopes", ["openid", "profile", "email"], list,
           "Scopes asked of the identity provider (add e.g. groups if it sends the role claim only then)."),
    Option("oidc_auto_provision", False, bool,
           "Create a Bastion account at the first single sign-on of an unknown user (off: an admin links "
           "accounts first)."),
    Option("oidc_role_claim", "groups", str, "Claim of the identity provider that carries the user's groups."),
    Option("oidc_role_map", [], list,
           "Claim value=Bastion role pairs, comma-separated (e.g. idp-admins=Admin,idp-dev=Editor); "
           "re-applied at every single sign-on."),
    Option("oidc_link_by_email", False, bool,
           "Let a single sign-on with an e-mail address the identity provider marks verified sign in to the "
           "existing Bastion account with that address. Only for a provider you trust with every address."),
    Option("oidc_sso_only", False, bool,
           "Passwords stop working for everybody but administrators (holders of manage): single sign-on only."),
)

_BY_NAME = {opt.name: opt for opt in OPTIONS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(opt: Option, raw: Any, source: str) -> Any:
    if raw is None:
        return None
    if opt.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{source}: expected yes/no, got {raw!r}")
    if opt.kind is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: expected a whole number, got {raw!r}") from None
    if opt.kind is list:
        if isinstance(raw, list):
            return [str(item).strip() for item in raw if str(item).strip()]
        return [item.strip() for item in str(raw).split(",") if item.strip()]
    return str(raw)


def _read_secret_file(path: str, source: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {path}: {exc.strerror}") from None


def _toml_values(env: dict[str, str]) -> dict[str, Any]:
    explicit = env.get(ENV_PREFIX + "CONFIG")
    data_dir = env.get(ENV_PREFIX + "DATA_DIR", _BY_NAME["data_dir"].default)
    path = Path(explicit) if explicit else Path(data_dir) / "bastion.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"BASTION_CONFIG: {path} does not exist")
        return {}
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return values


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Resolve every option to its value; raises ConfigError naming the bad source."""
    env = dict(os.environ if env is None else env)
    file_values = _toml_values(env)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        var = ENV_PREFIX + opt.name.upper()
        if var in env:
            values[opt.name] = _convert(opt, env[var], var)
        elif var + "_FILE" in env:
            values[opt.name] = _convert(opt, _read_secret_file(env[var + "_FILE"], var + "_FILE"), var)
        elif opt.name in file_values:
            values[opt.name] = _convert(opt, file_values[opt.name], f"config file: {opt.name}")
        else:
            values[opt.name] = opt.default
    values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    if values["db_engine"] not in {"sqlite", "postgresql"}:
        raise ConfigError("BASTION_DB_ENGINE: expected sqlite or postgresql")
    if values["email_use_tls"] and values["email_use_ssl"]:
        raise ConfigError("BASTION_EMAIL_USE_TLS and BASTION_EMAIL_USE_SSL: choose one (for SSL set USE_TLS=no)")
    return values


def markdown_table() -> str:
    """The settings table for the README."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for opt in OPTIONS:
        default = ",".join(opt.default) if isinstance(opt.default, list) else opt.default
        default = "" if default is None else str(default)
        name = f"`{ENV_PREFIX}{opt.name.upper()}`" + (" (or `_FILE`)" if opt.secret else "")
        rows.append(f"| {name} | `{default}` | {opt.help} |")
    return "\n".join(rows)
