"""Django settings: secure by default, every value overridable through bastion.config.

Production mode is the default. ``BASTION_DEV=1`` relaxes HTTPS for a local
development server only, and every command says so loudly.
"""

from __future__ import annotations

from pathlib import Path

from csp.constants import NONE, SELF

from bastion import config
from bastion.datadir import Layout, read_secret
from bastion.logs import logging_config

CONF = config.load()
DATA = Layout(Path(CONF["data_dir"]))
DEV = CONF["dev"]
DEBUG = DEV and CONF["debug"]
BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = CONF["secret_key"] or read_secret(DATA.secret_key) or ""
AUDIT_HMAC_KEY = CONF["audit_key"] or read_secret(DATA.audit_key) or ""
ENCRYPTION_KEYS = [
    k.strip()
    for k in (CONF["encryption_keys"] or read_secret(DATA.encryption_keys) or "").split(",")
    if k.strip()
]
SITE_URL = CONF["site_url"].rstrip("/")
ALLOWED_HOSTS = CONF["allowed_hosts"]

INSTALLED_APPS = [
    "bastion.web",  # first, so its templates override allauth's
    "bastion.accounts",
    "bastion.audit",
    "bastion.connections",
    "bastion.access",
    "bastion.explorer",
    "bastion.console",
    "bastion.schema_editor",
    "bastion.transfer",
    "bastion.jobs",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth.mfa's templates load it
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "csp",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "bastion.web.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "bastion.web.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "bastion.audit.middleware.DeniedRequestAuditMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "bastion.accounts.middleware.SessionTimeoutMiddleware",
    # allauth's UserSessionsMiddleware, throttled: records a session once a minute, not on every request.
    "bastion.accounts.sessions.SessionActivityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "bastion.accounts.middleware.PasswordChangeRequiredMiddleware",
    "bastion.accounts.middleware.MFARequiredMiddleware",
    # Last, so it sees the resolved view: a view without a declared permission never runs (T20).
    "bastion.access.middleware.DeclaredPermissionMiddleware",
]

ROOT_URLCONF = "bastion.urls"
WSGI_APPLICATION = "bastion.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "bastion.web.context_processors.bastion",
            ],
        },
    },
]

# --- metadata database and shared stores -----------------------------------
if CONF["db_engine"] == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": CONF["db_name"] or "bastion",
            "HOST": CONF["db_host"],
            "PORT": CONF["db_port"],
            "USER": CONF["db_user"],
            "PASSWORD": CONF["db_password"],
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": CONF["db_name"] or str(DATA.database),
            "OPTIONS": {
                # Writers queue instead of failing with "database is locked"; the
                # audit chain relies on IMMEDIATE to serialise its appends.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if CONF["redis_url"]:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": CONF["redis_url"]}}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                          "LOCATION": "bastion_cache"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- target databases (T22, T23) ------------------------------------------------
SQLITE_ROOTS = [Path(p).expanduser().resolve() for p in CONF["sqlite_roots"]] or [DATA.root / "databases"]
TARGET_HOSTS_ALLOWED = CONF["target_hosts_allowed"]

# --- data explorer -----------------------------------------------------------------
EXPLORER_QUERY_TIMEOUT = CONF["query_timeout"]
EXPLORER_BULK_REAUTH_ROWS = CONF["bulk_reauth_rows"]
CONSOLE_TIMEOUT = CONF["console_timeout"]
CONSOLE_MAX_STATEMENTS = CONF["console_max_statements"]
CONSOLE_MAX_ROWS = CONF["console_max_rows"]
CONSOLE_MAX_RESULT_BYTES = CONF["console_max_result_mb"] * 1024 * 1024
CONSOLE_DOWNLOAD_TIMEOUT = CONF["console_download_timeout"]
CONSOLE_HISTORY = CONF["console_history"]
SCHEMA_APPROVAL_SECONDS = CONF["approval_hours"] * 3600
DROP_SNAPSHOT_MAX_ROWS = CONF["drop_snapshot_max_rows"]
DROP_SNAPSHOT_MAX_BYTES = CONF["drop_snapshot_max_mb"] * 1024 * 1024
EXPORT_TIMEOUT = CONF["export_timeout"]
EXPORT_REAUTH_ROWS = CONF["export_reauth_rows"]
EXPORT_EGRESS_BYTES = CONF["export_egress_mb"] * 1024 * 1024
EXPORT_MAX_RUNNING = CONF["export_max_running"]
IMPORT_MAX_BYTES = CONF["import_max_mb"] * 1024 * 1024
IMPORT_MAX_ROWS = CONF["import_max_rows"]
IMPORT_TIMEOUT = CONF["import_timeout"]

# --- background jobs (issue 8, T28) -------------------------------------------------
# Only the backend is configured here: Bastion's code uses @task and .enqueue(), and keeps each job's state
# and progress in its own table (bastion.jobs.models.Job), so another backend changes no code.
TASKS = {"default": {"BACKEND": CONF["tasks_backend"]}}
EMBEDDED_WORKER = CONF["embedded_worker"]
JOBS_MAX_RUNNING = CONF["jobs_max_running"]
JOB_FILE_SECONDS = CONF["job_file_hours"] * 3600
JOBS_DISK_RESERVE_MB = CONF["jobs_disk_reserve_mb"]

# --- accounts and passwords (T11, T13) --------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Verify-and-upgrade only: a hash made by any of these is rehashed with
    # Argon2id at the user's next login.
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    # Users imported by `bastion import-users` (T12, Add-Migrate-Delete).
    # Argon2id over an MD5/SHA1 hash, written by `bastion migrate-hashes`: strong,
    # kept while any user who has not logged in since still has such a hash.
    "bastion.accounts.legacy_hashers.WrappedUnsaltedMD5PasswordHasher",
    "bastion.accounts.legacy_hashers.WrappedUnsaltedSHA1PasswordHasher",
    "bastion.accounts.legacy_hashers.WrappedSHA1PasswordHasher",
    "bastion.accounts.legacy_hashers.WrappedMD5PasswordHasher",
    # bcrypt hashes verify only if the `bcrypt` package is installed.
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
    # Weak MD5/SHA1 hashes, verified until `bastion migrate-hashes` has wrapped them.
    # Remove these (and the ones above) once `bastion check` says none remains.
    "bastion.accounts.legacy_hashers.UnsaltedMD5PasswordHasher",
    "bastion.accounts.legacy_hashers.UnsaltedSHA1PasswordHasher",
    "bastion.accounts.legacy_hashers.SHA1PasswordHasher",
    "bastion.accounts.legacy_hashers.MD5PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "bastion.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]  # e-mail: for the activation link
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_PREVENT_ENUMERATION = True
# Sign-up answers a taken e-mail address like a new one (allauth does so only with mandatory verification).
ACCOUNT_FORMS = {"signup": "bastion.accounts.registration.SignupForm"}
# Adding, removing or changing an e-mail address (where reset links go) or linking a single sign-on
# identity needs the password or a second factor again, so a stolen session cannot take the account over.
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
# Failed logins are clipped by bastion.accounts.throttle (per IP, per account
# and IP, and a growing delay per account) instead of allauth's per-account
# hard lock, which would hand attackers a way to lock anybody out (T14).
ACCOUNT_RATE_LIMITS = {"login_failed": None}

# --- multi-factor authentication (T16) -------------------------------------------
MFA_ADAPTER = "bastion.accounts.mfa_adapter.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_PASSKEY_SIGNUP_ENABLED = False
MFA_RECOVERY_CODES_SHOW_ONCE = True
MFA_TOTP_ISSUER = "Bastion"
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEV
MFA_FORMS = {"edit_webauthn": "bastion.accounts.mfa_forms.AuditedEditWebAuthnForm"}
MFA_TRUST_ENABLED = False  # "trust this browser" would make a stolen laptop a second factor

# --- single sign-on: OpenID Connect (T16) --------------------------------------------
# One provider, configured here from BASTION_OIDC_* (no SocialApp rows), at /accounts/oidc/sso/login/.
# Policy (auto-provisioning, claim -> role mapping, SSO-only): bastion.accounts.sso and .sso_adapter.
OIDC_ENABLED = bool(CONF["oidc_issuer"])
if OIDC_ENABLED and not CONF["oidc_issuer"].startswith("https://"):
    # allauth trusts an ID token fetched straight from the token endpoint without checking its signature
    # (OIDC Core 3.1.3.7): that is only sound over TLS.
    raise config.ConfigError("BASTION_OIDC_ISSUER: the identity provider must be an https:// URL")
OIDC_PROVIDER_ID = "sso"
OIDC_AUTO_PROVISION = CONF["oidc_auto_provision"]
OIDC_SSO_ONLY = OIDC_ENABLED and CONF["oidc_sso_only"]
OIDC_ROLE_CLAIM = CONF["oidc_role_claim"]
OIDC_ROLE_MAP = {}
for _pair in CONF["oidc_role_map"]:
    _value, _sep, _role = (part.strip() for part in _pair.partition("="))
    if not (_value and _sep and _role):
        raise config.ConfigError(f"BASTION_OIDC_ROLE_MAP: expected claim-value=Role, got {_pair!r}")
    OIDC_ROLE_MAP[_value] = _role
SOCIALACCOUNT_ADAPTER = "bastion.accounts.sso_adapter.SocialAccountAdapter"
SOCIALACCOUNT_LOGIN_ON_GET = False  # the login URL acts on POST (with CSRF) only
SOCIALACCOUNT_AUTO_SIGNUP = True  # provisioning is decided by the adapter, never by a sign-up form
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = CONF["oidc_link_by_email"]  # verified addresses only (allauth)
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = CONF["oidc_link_by_email"]
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [{
            "provider_id": OIDC_PROVIDER_ID,
            "name": CONF["oidc_name"],
            "client_id": CONF["oidc_client_id"],
            "secret": CONF["oidc_client_secret"],
            "settings": {"server_url": CONF["oidc_issuer"], "scope": CONF["oidc_scopes"]},
        }] if OIDC_ENABLED else [],
    },
}

# --- sessions (T08, T09, T10) -------------------------------------------------
SESSION_IDLE_TIMEOUT = CONF["session_idle_timeout"]
# A user's list of sessions (allauth.usersessions). allauth's activity tracking would write the
# session's record on every request; bastion.accounts.sessions.SessionActivityMiddleware (in
# MIDDLEWARE) records address and last activity at most once a minute instead.
USERSESSIONS_TRACK_ACTIVITY = False
USERSESSIONS_ADAPTER = "bastion.accounts.sessions.UserSessionsAdapter"  # audits "sign out other sessions"
SESSION_ABSOLUTE_TIMEOUT = CONF["session_absolute_timeout"]
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_SERIALIZER = "django.contrib.sessions.serializers.JSONSerializer"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEV
CSRF_COOKIE_SECURE = not DEV
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
# The __Host- prefix makes browsers refuse the cookie unless it is Secure,
# host-only and path=/, so a sibling subdomain cannot plant or shadow it.
SESSION_COOKIE_NAME = "bastion_session" if DEV else "__Host-bastion_session"
CSRF_COOKIE_NAME = "bastion_csrf" if DEV else "__Host-bastion_csrf"
CSRF_FAILURE_VIEW = "bastion.web.errors.csrf_failure"

# --- login clipping levels (T14) ---------------------------------------------
LOGIN_IP_LIMIT = CONF["login_ip_limit"]
LOGIN_IP_WINDOW = CONF["login_ip_window"]
LOGIN_ACCOUNT_IP_LIMIT = CONF["login_account_ip_limit"]
LOGIN_ACCOUNT_IP_WINDOW = 900
LOGIN_COOLDOWN = CONF["login_cooldown"]
LOGIN_ACCOUNT_DELAY_AFTER = CONF["login_account_delay_after"]
LOGIN_ACCOUNT_WINDOW = 3600
LOGIN_MAX_DELAY = CONF["login_max_delay"]
PROXY_COUNT = CONF["proxy_count"]

# --- transport and headers (T05, T07, T18, T29) -------------------------------
SECURE_SSL_REDIRECT = not DEV
SECURE_HSTS_SECONDS = 0 if DEV else CONF["hsts_seconds"]
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = CONF["hsts_preload"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Preloading is a promise only the owner of a domain can make; it is opt-in.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

CSP_REPORT_PATH = "/csp-report/"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "report-uri": [CSP_REPORT_PATH],
        **({} if DEV else {"upgrade-insecure-requests": True}),
    },
}

# --- request limits (T28) -------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = CONF["max_request_body_mb"] * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = CONF["max_form_fields"]
DATA_UPLOAD_MAX_NUMBER_FILES = 20
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Larger uploads go to a tempfile-made file in the jobs folder (same file system: keeping one is a rename);
# SizeLimit first stops any upload past BASTION_IMPORT_MAX_MB (T24, T28).
FILE_UPLOAD_TEMP_DIR = str(DATA.jobs_dir)
FILE_UPLOAD_HANDLERS = [
    "bastion.transfer.uploads.SizeLimit",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- static files, e-mail, i18n -----------------------------------------------------
STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

# E-mail (issue 7): SMTP when a host is configured; otherwise each message is written to a file in
# <data dir>/mail, so invitations work on a laptop, and the admin pages say where (bastion.accounts.mail).
EMAIL_FILE_PATH = str(DATA.mail_dir)
if CONF["email_host"]:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = CONF["email_host"]
    EMAIL_PORT = CONF["email_port"]
    EMAIL_USE_TLS = CONF["email_use_tls"]
    EMAIL_USE_SSL = CONF["email_use_ssl"]
    EMAIL_HOST_USER = CONF["email_host_user"]
    EMAIL_HOST_PASSWORD = CONF["email_host_password"]
    EMAIL_TIMEOUT = CONF["email_timeout"]
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
DEFAULT_FROM_EMAIL = SERVER_EMAIL = CONF["email_from"]
PASSWORD_RESET_TIMEOUT = CONF["password_reset_minutes"] * 60
INVITATION_SECONDS = CONF["invitation_days"] * 86400  # invitation and activation links
SELF_REGISTRATION = CONF["self_registration"]
# A reset asked for an unknown address sends nothing: the page looks the same either way (T15), and
# Bastion does not become a way to send mail to anyone.
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
# allauth's e-mails name "Bastion", not the request's host (account/email/base_message.txt), T18.
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Bastion] "

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = logging_config(CONF["log_level"])
