"""The data directory: its layout, its permissions and the secrets it holds.

Everything here runs before Django is configured (``bastion init`` creates the
keys that the settings then read), so it imports nothing from Django.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def secret_key(self) -> Path:
        return self.root / "secret_key"

    @property
    def audit_key(self) -> Path:
        return self.root / "audit_key"

    @property
    def encryption_keys(self) -> Path:
        return self.root / "encryption_keys"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "key.pem"

    @property
    def database(self) -> Path:
        return self.root / "bastion.sqlite3"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def jobs_dir(self) -> Path:
        """Files of background jobs: uploaded imports and kept exports (0700, files 0600)."""
        return self.root / "jobs"

    def key_files(self) -> tuple[Path, ...]:
        return (self.secret_key, self.audit_key, self.encryption_keys, self.tls_key, self.database)


def make_private_dir(path: Path) -> bool:
    """Create ``path`` (mode 0700) if missing; True when it was created."""
    if path.is_dir():
        return False
    path.mkdir(mode=DIR_MODE, parents=True)
    path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    return True


def write_private_file(path: Path, content: bytes) -> None:
    """Write a new secret file readable by the owner only; never overwrites."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def replace_private_file(path: Path, content: bytes) -> None:
    """Atomically replace a secret file: readers see the old or the new content, never half."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    write_private_file(temporary, content)
    os.replace(temporary, path)


def read_secret(path: Path) -> str | None:
    """The stripped content of a secret file, or None when it does not exist yet."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def ensure_keys(layout: Layout) -> list[str]:
    """Create the data dir and any missing key; returns what was created."""
    created = []
    if make_private_dir(layout.root):
        created.append(str(layout.root))
    generators = {
        layout.secret_key: lambda: secrets.token_urlsafe(64),
        layout.audit_key: lambda: secrets.token_urlsafe(64),
        layout.encryption_keys: lambda: Fernet.generate_key().decode("ascii"),
    }
    for path, generate in generators.items():
        if not path.exists():
            write_private_file(path, (generate() + "\n").encode("ascii"))
            created.append(str(path))
    return created


def permission_problems(layout: Layout) -> list[str]:
    """Files or directories that others than the owner can read or write (T44)."""
    problems = []
    if layout.root.is_dir() and stat.S_IMODE(layout.root.stat().st_mode) & 0o077:
        problems.append(f"{layout.root} is accessible by other users: chmod 700 {layout.root}")
    for path in layout.key_files():
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"{path} is readable by other users: chmod 600 {path}")
    return problems
