"""allauth.mfa forms with Bastion's audit: renaming a security key sends no allauth signal."""

from __future__ import annotations

from allauth.core import context
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn.forms import EditWebAuthnForm

from bastion.audit.services import record


class AuditedEditWebAuthnForm(EditWebAuthnForm):
    def save(self) -> Authenticator:
        before = self.instance.wrap().name
        authenticator = super().save()
        user = authenticator.user
        record("mfa.renamed", request=context.request, actor=user, target=user.get_username(),
               details={"type": authenticator.type, "authenticator": authenticator.pk},
               before={"name": before}, after={"name": self.cleaned_data["name"]})
        return authenticator
