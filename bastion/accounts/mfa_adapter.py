"""allauth MFA adapter: secrets encrypted at rest, a required second factor kept.

The WebAuthn relying party stays allauth's: the request's host, which Django has already checked
against ALLOWED_HOSTS (T18), so a passkey works on every name Bastion answers to.
"""

from __future__ import annotations

from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator

from bastion.accounts.mfa import SECOND_FACTORS, mfa_required
from bastion.connections.crypto import decrypt_secret, encrypt_secret


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        """TOTP secrets and recovery-code seeds are stored as Fernet tokens, like connection passwords (T30)."""
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)

    def _get_site_name(self) -> str:
        return "Bastion"

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        """A member of a role that requires MFA cannot remove their last second factor."""
        if authenticator.type not in SECOND_FACTORS or not mfa_required(authenticator.user):
            return True
        others = Authenticator.objects.filter(user_id=authenticator.user_id, type__in=SECOND_FACTORS)
        return others.exclude(pk=authenticator.pk).exists()
