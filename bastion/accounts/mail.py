"""Sending Bastion's own e-mails, and telling the admin where they go without an SMTP server."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.template.loader import render_to_string

from bastion.logs import get_logger

log = get_logger("bastion.accounts")

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
NOT_SENT = ("The e-mail could not be sent: Bastion cannot reach its mail server. "
            "Check the e-mail settings (BASTION_EMAIL_HOST and the others) and try again.")


def file_destination() -> str | None:
    """The folder e-mails are written to when no SMTP server is configured; None when they are sent."""
    return str(settings.EMAIL_FILE_PATH) if settings.EMAIL_BACKEND == FILE_BACKEND else None


def send(template: str, to: str, context: dict[str, Any]) -> None:
    """Send ``<template>_subject.txt`` / ``<template>_message.txt``; ValidationError in plain words if it fails."""
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    body = render_to_string(f"{template}_message.txt", context)
    try:
        send_mail(subject, body, None, [to])
    except OSError as exc:  # smtplib's errors and socket timeouts are OSErrors
        log.warning("mail_failed", template=template, error=str(exc)[:200])
        raise ValidationError(NOT_SENT) from exc
