"""Bastion's own deployment checks (T40, T44), run by `bastion check` and `manage.py check --deploy`."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register

from bastion.datadir import permission_problems

WEAK_ADMIN_PASSWORDS = ("admin", "password", "changeme", "bastion", "administrator", "root")
MIN_KEY_LENGTH = 50


@register(Tags.security, deploy=True)
def check_mode(app_configs: Any, **kwargs: Any) -> list:
    problems = []
    if settings.DEV:
        problems.append(Warning(
            "Development mode is on: HTTPS, HSTS and secure cookies are off.",
            hint="Unset BASTION_DEV for any server other people can reach.", id="bastion.W001"))
    if settings.DEBUG:
        problems.append(Error(
            "DEBUG is on: error pages would show code, settings and SQL.",
            hint="Unset BASTION_DEBUG.", id="bastion.E001"))
    if not settings.DEV and not settings.SITE_URL.startswith("https://"):
        problems.append(Error(
            f"The site URL {settings.SITE_URL} is not HTTPS: e-mailed links would travel in clear.",
            hint="Set BASTION_SITE_URL to the https:// address users reach.", id="bastion.E002"))
    if "*" in settings.ALLOWED_HOSTS:
        problems.append(Error(
            "ALLOWED_HOSTS contains '*': forged Host headers would be accepted (T18).",
            hint="Set BASTION_ALLOWED_HOSTS to the real host names.", id="bastion.E003"))
    return problems


@register(Tags.security, deploy=True)
def check_secrets(app_configs: Any, **kwargs: Any) -> list:
    problems = []
    if len(settings.AUDIT_HMAC_KEY) < MIN_KEY_LENGTH:
        problems.append(Error(
            "The audit HMAC key is missing or shorter than 50 characters.",
            hint="Run `bastion init` or set BASTION_AUDIT_KEY_FILE to a file with a long random key.",
            id="bastion.E010"))
    if not settings.ENCRYPTION_KEYS:
        problems.append(Error(
            "No encryption key for secrets at rest.",
            hint="Run `bastion init` or set BASTION_ENCRYPTION_KEYS_FILE.", id="bastion.E011"))
    for text in permission_problems(settings.DATA):
        problems.append(Error(text, hint="Only the account running Bastion may read its keys.",
                              id="bastion.E012"))
    return problems


@register(Tags.security, deploy=True)
def check_admin_passwords(app_configs: Any, **kwargs: Any) -> list:
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError

    try:
        admins = list(get_user_model().objects.filter(is_superuser=True, is_active=True))
    except DatabaseError:
        return [Error("The metadata database is not initialised.", hint="Run `bastion init`.",
                      id="bastion.E020")]
    problems = []
    for admin in admins:
        guesses = (*WEAK_ADMIN_PASSWORDS, admin.get_username())
        if any(admin.check_password(guess) for guess in guesses):
            problems.append(Error(
                f"Administrator {admin.get_username()!r} has a default or guessable password.",
                hint=f"Sign in as {admin.get_username()} and change the password.", id="bastion.E021"))
    return problems


@register(Tags.security, deploy=True)
def check_admin_mfa(app_configs: Any, **kwargs: Any) -> list:
    """T16, T40: the Admin role requires a second factor, so no administrator works with a password alone."""
    from django.db import DatabaseError

    from bastion.access.models import ADMIN_ROLE, RoleOptions

    try:
        required = RoleOptions.objects.filter(role__name=ADMIN_ROLE, require_mfa=True).exists()
    except DatabaseError:
        return []  # check_admin_passwords reports the database that is not initialised
    if required:
        return []
    return [Error("The Admin role does not require two-factor authentication.",
                  hint="In Roles → Admin, tick 'Members must use two-factor authentication'.", id="bastion.E022")]


@register(Tags.security, deploy=True)
def check_target_hosts(app_configs: Any, **kwargs: Any) -> list:
    if settings.TARGET_HOSTS_ALLOWED:
        return []
    return [Info(
        "Target databases may be registered on any host (link-local and cloud-metadata addresses excepted).",
        hint="Set BASTION_TARGET_HOSTS_ALLOWED to the hosts or networks of your databases.", id="bastion.I001")]


@register(Tags.security, deploy=True)
def check_process(app_configs: Any, **kwargs: Any) -> list:
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get("BASTION_ALLOW_ROOT"):
        return [Warning("Bastion is running as root.",
                        hint="Run it as an unprivileged user (or pass --allow-root to serve).",
                        id="bastion.W002")]
    return []


@register(Tags.security, deploy=True)
def check_legacy_hashes(app_configs: Any, **kwargs: Any) -> list:
    """T12: weak MD5/SHA1 hashes fail the check; once none is left, say which legacy hashers can go."""
    from django.contrib.auth.hashers import get_hashers
    from django.db import DatabaseError

    from bastion.accounts.legacy_hashers import WEAK_ALGORITHMS, WRAPPED_ALGORITHMS
    from bastion.accounts.legacy_migrate import weak_hash_users, wrapped_hash_users

    try:
        weak, wrapped = weak_hash_users().count(), wrapped_hash_users().count()
    except DatabaseError:
        return []  # check_admin_passwords reports the database that is not initialised
    if weak:
        return [Warning(
            f"{weak} user(s) still have MD5/SHA1 password hashes, which are fast to crack if the database leaks.",
            hint="Run `bastion migrate-hashes`.", id="bastion.W120")]
    unused = WEAK_ALGORITHMS | (set() if wrapped else WRAPPED_ALGORITHMS)
    removable = [hasher.algorithm for hasher in get_hashers() if hasher.algorithm in unused]
    if not removable:
        return []
    kept = f"; keep the argon2_* ones while {wrapped} user(s) have wrapped hashes" if wrapped else ""
    return [Info(
        f"No MD5/SHA1 password hash remains: the legacy hashers {', '.join(removable)} can be removed{kept}.",
        hint="Remove them from PASSWORD_HASHERS in bastion/settings.py.", id="bastion.I120")]
