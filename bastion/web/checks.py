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
