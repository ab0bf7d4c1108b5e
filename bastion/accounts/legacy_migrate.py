"""`bastion migrate-hashes`: wrap every weak legacy hash in Argon2id, without the passwords (T12).

Each MD5/SHA1 hash becomes Argon2id over that hash (bastion.accounts.legacy_hashers),
in batches, each batch its own transaction: an interrupted run keeps what it
finished, and the next run picks up the hashes still weak. A hash is replaced only
if it is still the one read (a user who logged in or changed the password meanwhile
keeps the new hash). Replacing a hash ends that user's sessions, as any password
change does in Django.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher
from django.db import transaction
from django.db.models import Q, QuerySet

from bastion.accounts.legacy_hashers import WRAPPED_ALGORITHMS, WRAPPERS
from bastion.audit.services import record

DEFAULT_BATCH_SIZE = 500
WEAK_PREFIXES = ("md5$", "sha1$")
BARE_MD5 = r"^[0-9a-fA-F]{32}$"  # how the oldest Django stored unsalted MD5

Progress = Callable[[int, int], None]
"""Called after each batch with (hashes handled so far, hashes to handle in this run)."""


@dataclass
class MigrationResult:
    wrapped: int = 0
    skipped: int = 0  # malformed, or changed while the batch ran
    remaining: int = 0
    seconds: float = 0.0


def weak_hash_users() -> QuerySet:
    """Users whose password is still an MD5 or SHA1 hash (salted or not)."""
    starts = [Q(password__startswith=prefix) for prefix in WEAK_PREFIXES]
    return get_user_model().objects.filter(reduce(or_, starts, Q(password__regex=BARE_MD5)))


def wrapped_hash_users() -> QuerySet:
    """Users whose password is an Argon2-wrapped legacy hash (upgraded to plain Argon2 at their next login)."""
    starts = [Q(password__startswith=f"{algorithm}$") for algorithm in sorted(WRAPPED_ALGORITHMS)]
    return get_user_model().objects.filter(reduce(or_, starts))


def wrap(encoded: str) -> str | None:
    """The Argon2-wrapped form of a weak legacy hash; None if it is not one or is malformed."""
    try:
        return WRAPPERS[identify_hasher(encoded).algorithm]().wrap(encoded)
    except (KeyError, ValueError):
        return None


def _batch(after_pk: int, size: int) -> tuple[int, int, int]:
    """Wrap up to ``size`` weak hashes of users after ``after_pk``: (last pk seen, wrapped, skipped)."""
    User = get_user_model()
    wrapped = skipped = 0
    with transaction.atomic():
        rows = list(weak_hash_users().filter(pk__gt=after_pk).order_by("pk").values_list("pk", "password")[:size])
        for pk, old in rows:
            new = wrap(old)
            if new and User.objects.filter(pk=pk, password=old).update(password=new):
                wrapped += 1
            else:
                skipped += 1
    return (rows[-1][0] if rows else after_pk), wrapped, skipped


def migrate_hashes(batch_size: int = DEFAULT_BATCH_SIZE, limit: int | None = None,
                   on_progress: Progress | None = None) -> MigrationResult:
    """Wrap the weak hashes (at most ``limit`` of them); one audit event for the run, even an interrupted one."""
    started = time.monotonic()
    result = MigrationResult()
    todo = weak_hash_users().count()
    if limit is not None:
        todo = min(todo, limit)
    last_pk = 0
    completed = False
    try:
        while result.wrapped + result.skipped < todo:
            size = min(batch_size, todo - result.wrapped - result.skipped)
            pk, wrapped, skipped = _batch(last_pk, size)
            if pk == last_pk:
                break  # nothing left after last_pk (users removed meanwhile)
            last_pk = pk
            result.wrapped += wrapped
            result.skipped += skipped
            if on_progress:
                on_progress(result.wrapped + result.skipped, todo)
        completed = True
    finally:
        result.seconds = time.monotonic() - started
        result.remaining = weak_hash_users().count()
        if result.wrapped or result.skipped:
            record("user.hashes_wrapped", target="legacy password hashes", details={
                "wrapped": result.wrapped, "skipped": result.skipped, "remaining": result.remaining,
                "interrupted": not completed, "seconds": round(result.seconds, 1)})
    return result
