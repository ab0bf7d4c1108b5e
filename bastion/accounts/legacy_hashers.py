"""Password hashers for users imported from older systems (T12, Add-Migrate-Delete).

Two kinds:

- Legacy verifiers for the weak formats: unsalted MD5 (``md5$$<hex>``, or a bare
  32-digit hex), unsalted SHA1 (``sha1$$<hex>``), salted SHA1 (``sha1$<salt>$<hex>``,
  sha1(salt + password)) and salted MD5 (``md5$<salt>$<hex>``). Django 5.1 removed
  the first three classes; all four are kept here in Django's own encodings, so the
  hashes an older Django wrote verify unchanged, and a malformed hash fails to
  verify instead of raising (Django's remaining MD5PasswordHasher raises on ``md5$$x``).
- Wrapped hashers (``argon2_md5``, ``argon2_sha1``, ``argon2_salted_sha1``,
  ``argon2_salted_md5``): Argon2id over the legacy encoded hash. ``bastion
  migrate-hashes`` makes them from the stored legacy hash, without the password
  (Django's "password upgrading without requiring a login"). A login computes the
  legacy hash of the typed password and verifies it with Argon2; because none of
  them is PASSWORD_HASHERS[0], Django then stores a plain Argon2 hash.

No hasher here is ever first in PASSWORD_HASHERS, so none of them makes new hashes.
Encoding of a wrapped hash: ``<algorithm>$<legacy salt>$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>``
(the legacy salt is empty for the unsalted formats).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.contrib.auth.hashers import Argon2PasswordHasher, BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop as _

HEX_LENGTH = {"md5": 32, "sha1": 40}
DIGEST_NAME = {"md5": "an MD5", "sha1": "a SHA1"}


class _LegacyDigestHasher(BasePasswordHasher):
    """``<prefix>$<salt>$<hex digest of salt + password>``; the salt may be empty (unsalted)."""

    prefix = ""  # "md5" or "sha1": the first field of the encoded hash
    salted = True

    def salt(self) -> str:
        return super().salt() if self.salted else ""

    def encode(self, password: str, salt: str) -> str:
        if self.salted:
            self._check_encode_args(password, salt)
        elif salt:
            raise ValueError(f"{self.algorithm} takes no salt.")
        digest = hashlib.new(self.prefix, (salt + password).encode(), usedforsecurity=False).hexdigest()
        return f"{self.prefix}${salt}${digest}"

    def decode(self, encoded: str) -> dict[str, Any]:
        if not self.salted and "$" not in encoded:  # a bare hex digest, as the oldest Django stored MD5
            encoded = f"{self.prefix}$${encoded}"
        prefix, salt, digest = encoded.split("$", 2)
        assert prefix == self.prefix  # noqa: S101 (Django's hashers assert the same)
        return {"algorithm": self.algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        try:
            stored = canonical(self, encoded)
        except ValueError:  # a malformed hash matches no password
            return False
        return constant_time_compare(stored, self.encode(password, self.decode(stored)["salt"]))

    def safe_summary(self, encoded: str) -> dict[str, str]:
        decoded = self.decode(encoded)
        return {_("algorithm"): decoded["algorithm"], _("salt"): mask_hash(decoded["salt"], show=2),
                _("hash"): mask_hash(decoded["hash"])}

    def must_update(self, encoded: str) -> bool:
        return True

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass


class UnsaltedMD5PasswordHasher(_LegacyDigestHasher):
    """md5(password), stored as ``md5$$<hex>`` (a bare 32-digit hex is accepted too)."""

    algorithm = "unsalted_md5"
    prefix = "md5"
    salted = False


class UnsaltedSHA1PasswordHasher(_LegacyDigestHasher):
    """sha1(password), stored as ``sha1$$<hex>``."""

    algorithm = "unsalted_sha1"
    prefix = "sha1"
    salted = False


class SHA1PasswordHasher(_LegacyDigestHasher):
    """sha1(salt + password), stored as ``sha1$<salt>$<hex>`` (Django's former SHA1PasswordHasher)."""

    algorithm = "sha1"
    prefix = "sha1"


class MD5PasswordHasher(_LegacyDigestHasher):
    """md5(salt + password), stored as ``md5$<salt>$<hex>``: Django's MD5PasswordHasher, except that a
    malformed hash (such as ``md5$$`` and a digest of the wrong length) fails to verify instead of raising."""

    algorithm = "md5"
    prefix = "md5"


def canonical(hasher: _LegacyDigestHasher, encoded: str) -> str:
    """The legacy hash exactly as its hasher's encode() writes it (``<prefix>$<salt>$<lower-case hex>``).

    Raises ValueError if it is not a well-formed hash of that hasher's kind.
    """
    prefix = hasher.prefix
    decoded = hasher.decode(encoded)
    digest, salt = decoded["hash"].lower(), decoded["salt"]
    if not re.fullmatch(f"[0-9a-f]{{{HEX_LENGTH[prefix]}}}", digest):
        raise ValueError(f"not {DIGEST_NAME[prefix]} digest ({HEX_LENGTH[prefix]} hexadecimal digits)")
    if "$" in salt:
        raise ValueError("the salt contains '$'")
    salted = getattr(hasher, "salted", True)
    if salted != bool(salt):
        raise ValueError("a salt is required" if salted else "this format takes no salt")
    return f"{prefix}${salt}${digest}"


class _WrappedLegacyHasher(Argon2PasswordHasher):
    """Argon2id over a legacy encoded hash; Django's Argon2 parameters, never lowered."""

    legacy: type[_LegacyDigestHasher]

    def wrap(self, legacy_encoded: str, salt: str | None = None) -> str:
        """The wrapped hash of a stored legacy hash: what `bastion migrate-hashes` writes, no password needed."""
        legacy = self.legacy()
        legacy_encoded = canonical(legacy, legacy_encoded)
        legacy_salt = legacy.decode(legacy_encoded)["salt"]
        outer = super().encode(legacy_encoded, salt or self.salt())  # "<algorithm>$argon2id$..."
        return outer.replace("$", f"${legacy_salt}$", 1)

    def encode(self, password: str, salt: str) -> str:
        legacy = self.legacy()
        return self.wrap(legacy.encode(password, legacy.salt()), salt)

    def _split(self, encoded: str) -> tuple[str, str]:
        """(legacy salt, the Argon2 hash in Django's "<algorithm>$argon2id$..." form)."""
        algorithm, legacy_salt, outer = encoded.split("$", 2)
        assert algorithm == self.algorithm  # noqa: S101
        return legacy_salt, f"{algorithm}${outer}"

    def decode(self, encoded: str) -> dict[str, Any]:
        legacy_salt, outer = self._split(encoded)
        return {**super().decode(outer), "legacy_salt": legacy_salt}

    def verify(self, password: str, encoded: str) -> bool:
        legacy_salt, outer = self._split(encoded)
        return super().verify(self.legacy().encode(password, legacy_salt), outer)


class WrappedUnsaltedMD5PasswordHasher(_WrappedLegacyHasher):
    algorithm = "argon2_md5"
    legacy = UnsaltedMD5PasswordHasher


class WrappedUnsaltedSHA1PasswordHasher(_WrappedLegacyHasher):
    algorithm = "argon2_sha1"
    legacy = UnsaltedSHA1PasswordHasher


class WrappedSHA1PasswordHasher(_WrappedLegacyHasher):
    algorithm = "argon2_salted_sha1"
    legacy = SHA1PasswordHasher


class WrappedMD5PasswordHasher(_WrappedLegacyHasher):
    algorithm = "argon2_salted_md5"
    legacy = MD5PasswordHasher


WRAPPERS: dict[str, type[_WrappedLegacyHasher]] = {
    wrapper.legacy.algorithm: wrapper
    for wrapper in (WrappedUnsaltedMD5PasswordHasher, WrappedUnsaltedSHA1PasswordHasher,
                    WrappedSHA1PasswordHasher, WrappedMD5PasswordHasher)
}
"""Weak legacy algorithm -> the hasher that wraps it."""
WEAK_ALGORITHMS = frozenset(WRAPPERS)
WRAPPED_ALGORITHMS = frozenset(wrapper.algorithm for wrapper in WRAPPERS.values())
