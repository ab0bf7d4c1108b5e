"""T30: connection passwords are Fernet tokens; rotation moves every token to the newest key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured

from bastion.audit.models import AuditEvent
from bastion.connections.crypto import decrypt_secret, encrypt_secret, rotate_all
from bastion.connections.models import Connection


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_T30_a_secret_is_stored_only_as_a_token(settings):
    settings.ENCRYPTION_KEYS = [new_key()]
    token = encrypt_secret("hunter2-Secret")
    assert "hunter2" not in token
    assert token != encrypt_secret("hunter2-Secret")  # random IV: equal passwords do not look equal
    assert decrypt_secret(token) == "hunter2-Secret"


def test_T30_a_token_cannot_be_opened_without_its_key(settings):
    settings.ENCRYPTION_KEYS = [new_key()]
    token = encrypt_secret("pw")
    settings.ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(InvalidToken):
        decrypt_secret(token)


def test_T30_no_key_or_a_malformed_key_is_a_configuration_error(settings):
    settings.ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="No encryption key"):
        encrypt_secret("pw")
    settings.ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="not a valid Fernet key"):
        encrypt_secret("pw")


@pytest.mark.django_db
def test_T30_rotation_reencrypts_with_the_new_key_so_the_old_key_can_go(settings):
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]
    passwords = {"pg": "first-Password-1", "my": "second-Password-2"}
    for name, password in passwords.items():
        Connection.objects.create(name=name, engine="postgresql", host="127.0.0.1", database="d",
                                  username="u", password_encrypted=encrypt_secret(password))
    Connection.objects.create(name="file", engine="sqlite", sqlite_path="/x.db")  # no password: untouched
    updated_before = dict(Connection.objects.values_list("name", "updated_at"))

    settings.ENCRYPTION_KEYS = [new, old]
    assert rotate_all() == 2

    settings.ENCRYPTION_KEYS = [new]  # the old key is gone
    for name, password in passwords.items():
        assert decrypt_secret(Connection.objects.get(name=name).password_encrypted) == password
    settings.ENCRYPTION_KEYS = [old]
    for name in passwords:
        with pytest.raises(InvalidToken):
            decrypt_secret(Connection.objects.get(name=name).password_encrypted)
    assert Connection.objects.get(name="file").password_encrypted == ""
    # The passwords did not change, so neither did the engines' cache key.
    assert dict(Connection.objects.values_list("name", "updated_at")) == updated_before
    event = AuditEvent.objects.get(action="connection.keys_rotated")
    assert event.details == {"count": 2, "mfa_secrets": 0}


@pytest.mark.django_db
def test_T30_rotation_is_all_or_nothing(settings):
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]
    Connection.objects.create(name="a", engine="postgresql", password_encrypted=encrypt_secret("a-pass"))
    settings.ENCRYPTION_KEYS = [new_key()]
    Connection.objects.create(name="b", engine="postgresql", password_encrypted=encrypt_secret("b-pass"))
    tokens = dict(Connection.objects.values_list("name", "password_encrypted"))
    with pytest.raises(InvalidToken):
        rotate_all(keys=[new, old])  # "b" was made with a key not in the list
    assert dict(Connection.objects.values_list("name", "password_encrypted")) == tokens
    assert not AuditEvent.objects.filter(action="connection.keys_rotated").exists()
