"""Template helpers for the user admin pages: where e-mail goes, and open invitations."""

from __future__ import annotations

from django import template

from bastion.accounts import invitations, mail

register = template.Library()


@register.inclusion_tag("accounts/mail_note.html")
def mail_note() -> dict[str, str | None]:
    """Without an SMTP server, tell the admin which folder e-mails are written to."""
    return {"path": mail.file_destination()}


@register.filter
def invitation_pending(user) -> bool:
    return invitations.is_pending(user)
