"""T12, legacy password hashes (Add-Migrate-Delete): import, wrap in Argon2id, upgrade at login, check.

Logins go through the real login page; hashes are computed here with hashlib, as
the older system did. Only the 10,000-user test lowers Argon2's cost (class
attributes, as Django's own tests do), to keep it short; the parameters
production uses are pinned by test_T12_wrapped_hashers_use_djangos_argon2_parameters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.core.checks import INFO, WARNING, run_checks

from bastion.accounts.legacy_hashers import WrappedUnsaltedMD5PasswordHasher
from bastion.accounts.legacy_import import ImportRefused, import_users
from bastion.accounts.legacy_migrate import migrate_hashes, weak_hash_users
from bastion.audit.models import AuditEvent
from bastion.cli import ProgressBar
from bastion.cli import main as bastion_cli
from bastion.web.checks import check_legacy_hashes
from tests.conftest import HttpsClient, login

pytestmark = pytest.mark.django_db
User = get_user_model()
FIELDS = ["username", "email", "password_hash", "format", "salt", "role"]

try:
    import bcrypt
except ImportError:
    bcrypt = None


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(username: str, password_hash: str, fmt: str, **extra: str) -> dict[str, str]:
    return {"username": username, "password_hash": password_hash, "format": fmt, **extra}


def password_of(username: str) -> str:
    return User.objects.get(username=username).password


def logs_in(username: str, password: str) -> bool:
    """A fresh browser signs in through the login page (each login from its own client)."""
    response = login(HttpsClient(), username, password)
    return response.status_code == 302 and "/accounts/login/" not in response["Location"]


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


@pytest.fixture
def cheap_argon2(monkeypatch):
    """Argon2 at the lowest cost, for the tests that hash thousands of times."""
    monkeypatch.setattr(Argon2PasswordHasher, "time_cost", 1)
    monkeypatch.setattr(Argon2PasswordHasher, "memory_cost", 64)
    monkeypatch.setattr(Argon2PasswordHasher, "parallelism", 1)


# Each legacy shape: (row for the file, password, prefix of the stored hash after the import).
SHAPES = {
    "md5 bare upper-case": (row("m1", md5("pw-m1").upper(), "md5"), "pw-m1", "md5$$"),
    "md5 django form": (row("m2", "md5$$" + md5("pw-m2"), "md5"), "pw-m2", "md5$$"),
    "sha1": (row("s1", sha1("pw-s1"), "sha1"), "pw-s1", "sha1$$"),
    "salted sha1, salt column": (row("s2", sha1("NaCl" + "pw-s2"), "salted_sha1", salt="NaCl"), "pw-s2", "sha1$NaCl$"),
    "salted sha1, salt$hash": (row("s3", "k9$" + sha1("k9" + "pw-s3"), "salted_sha1"), "pw-s3", "sha1$k9$"),
    "salted sha1, django form": (row("s4", "sha1$ab$" + sha1("ab" + "pw-s4"), "SALTED_SHA1"), "pw-s4", "sha1$ab$"),
    "salted md5": (row("m3", md5("pep" + "pw-m3"), "salted_md5", salt="pep"), "pw-m3", "md5$pep$"),
    "django pbkdf2": (row("p1", make_password("pw-p1", hasher="pbkdf2_sha256"), "django"), "pw-p1", "pbkdf2_sha256$"),
    "django pbkdf2 sha1": (row("p2", make_password("pw-p2", hasher="pbkdf2_sha1"), "django"), "pw-p2", "pbkdf2_sha1$"),
}
if bcrypt is not None:
    BCRYPT_ROW = row("b1", bcrypt.hashpw(b"pw-b1", bcrypt.gensalt(4)).decode(), "bcrypt")
    SHAPES["bcrypt"] = (BCRYPT_ROW, "pw-b1", "bcrypt$$2b$")


# --- import, then login upgrades ------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_T12_imported_user_logs_in_with_the_old_password_and_gets_plain_argon2(shape, tmp_path):
    entry, password, stored = SHAPES[shape]
    import_users(write_csv(tmp_path / "users.csv", [entry]))
    username = entry["username"]
    assert password_of(username).startswith(stored)
    assert not logs_in(username, password + "x")
    assert password_of(username).startswith(stored)  # a wrong password upgrades nothing
    assert logs_in(username, password)
    assert password_of(username).startswith("argon2$argon2id$")
    assert logs_in(username, password)


@pytest.mark.skipif(bcrypt is not None, reason="the bcrypt package is installed")
def test_T12_bcrypt_hashes_are_refused_while_the_bcrypt_package_is_missing(tmp_path):
    bcrypt_hash = "$2b$12$" + "abcdefghijklmnopqrstuv" + "A" * 31
    with pytest.raises(ImportRefused, match=r"line 2: bcrypt hashes need the Python package 'bcrypt'"):
        import_users(write_csv(tmp_path / "users.csv", [row("b1", bcrypt_hash, "bcrypt")]))
    with pytest.raises(ImportRefused, match=r"bcrypt_sha256 hashes need the Python package 'bcrypt'"):
        import_users(write_csv(tmp_path / "users.csv", [row("b1", "bcrypt_sha256$" + bcrypt_hash, "django")]))


def test_T12_import_sets_fields_and_roles_and_writes_one_audit_event(tmp_path):
    path = write_csv(tmp_path / "users.csv", [
        row("ann", md5("pw-ann"), "md5", email="ann@example.com", role="viewer"),
        row("bob", sha1("pw-bob"), "sha1", role="Editor"),
        row("cid", md5("pw-cid"), "md5")])
    result = import_users(path)
    assert (result.created, result.skipped) == (3, 0)
    ann = User.objects.get(username="ann")
    assert ann.email == "ann@example.com" and ann.is_active and not ann.must_change_password
    assert list(ann.groups.values_list("name", flat=True)) == ["Viewer"]
    assert list(User.objects.get(username="bob").groups.values_list("name", flat=True)) == ["Editor"]
    assert not User.objects.get(username="cid").groups.exists()
    assert actions() == ["user.imported"]
    event = AuditEvent.objects.get()
    assert event.actor == "" and event.auth_method == "cli" and event.target == "users.csv"
    assert event.details == {"created": 3, "skipped_existing": 0, "formats": {"md5": 2, "sha1": 1},
                             "roles": {"Viewer": 1, "Editor": 1}}


def test_T12_json_import_streams_records_across_read_chunks(tmp_path):
    records = [{"username": f"j{i:04d}", "password_hash": md5(f"pw-{i}"), "format": "md5",
                "email": None, "role": None} for i in range(2500)]  # about 250 kB: many 64 kB reads
    path = tmp_path / "users.json"
    path.write_text("[\n" + ",\n   ".join(json.dumps(r) for r in records) + "\n]\n", encoding="utf-8")
    assert import_users(path).created == 2500
    assert password_of("j1234") == "md5$$" + md5("pw-1234")


def test_T12_skip_existing_leaves_existing_users_alone(tmp_path, user):
    before = user.password
    path = write_csv(tmp_path / "users.csv", [row("ALICE", md5("x"), "md5"), row("new", md5("y"), "md5")])
    with pytest.raises(ImportRefused, match=r"line 2: a user named 'ALICE' exists already"):
        import_users(path)
    result = import_users(path, skip_existing=True)
    assert (result.created, result.skipped) == (1, 1)
    assert User.objects.get(pk=user.pk).password == before


# --- refusals: nothing imported -----------------------------------------------------------
REFUSED = {
    "short md5": ([row("a", "abc", "md5")], r"line 2: not an MD5 digest \(32 hexadecimal digits\)"),
    "sha1 given as md5": ([row("a", sha1("x"), "md5")], "line 2: not an MD5 digest"),
    "non-hex": ([row("a", "z" * 40, "sha1")], "line 2: not a SHA1 digest"),
    "salt for unsalted": ([row("a", md5("x"), "md5", salt="s")], "line 2: this format takes no salt"),
    "salted without salt": ([row("a", sha1("x"), "salted_sha1")], "line 2: a salt is required"),
    "salt twice": ([row("a", "s$" + sha1("x"), "salted_sha1", salt="s")], "line 2: the salt is given twice"),
    # the wrapped hash must fit the password column (PostgreSQL enforces its length)
    "salt too long": ([row("a", sha1("x"), "salted_sha1", salt="s" * 65)], "line 2: the salt is longer than 64"),
    "unknown format": ([row("a", md5("x"), "crc32")], "line 2: unknown format 'crc32'"),
    "no format": ([row("a", md5("x"), "")], "line 2: the format is empty"),
    "empty hash": ([row("a", "", "md5")], "line 2: the password hash is empty"),
    "bad django hash": ([row("a", "pbkdf2_sha256$x", "django")], "line 2: a malformed pbkdf2_sha256 hash"),
    "unusable": ([row("a", "!abc", "django")], "line 2: an unusable password"),
    "unknown role": ([row("a", md5("x"), "md5", role="Boss")], "line 2: there is no role 'Boss'"),
    "bad username": ([row("a b", md5("x"), "md5")], "line 2: username 'a b'"),
    "bad email": ([row("a", md5("x"), "md5", email="nope")], "line 2: 'nope' is not an e-mail address"),
    "twice in file": ([row("a", md5("x"), "md5"), row("A", md5("y"), "md5")],
                      "line 3: the username 'A' appears twice in the file"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_T12_bad_rows_refuse_the_whole_file(case, tmp_path):
    rows, reason = REFUSED[case]
    good = [row(f"good{i}", md5(f"pw{i}"), "md5") for i in range(3)]
    with pytest.raises(ImportRefused, match=reason):
        import_users(write_csv(tmp_path / "users.csv", rows + good))
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_T12_a_bad_row_late_in_a_large_file_rolls_back_the_rows_already_inserted(tmp_path):
    rows = [row(f"u{i:04d}", md5(f"pw{i}"), "md5") for i in range(2500)]
    rows[2200]["password_hash"] = "nothex"
    with pytest.raises(ImportRefused, match="line 2202: not an MD5 digest") as refused:
        import_users(write_csv(tmp_path / "users.csv", rows))
    assert refused.value.errors == ["line 2202: not an MD5 digest (32 hexadecimal digits)"]
    assert not User.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("users.csv", "user,hash\nx,y\n", "line 1: the header must name the columns"),
    ("users.json", '{"username": "a"}', r"expected \["),
    ("users.json", '[{"username": "a", "format": "md5"}, {"user', "after record 1: not valid JSON"),
    ("users.json", '[{"username": "a", "colour": "red"}]', "record 1: unknown field"),
    ("users.json", '[{"username": 7}]', "record 1: username must be text"),
    ("users.json", '[["a"]]', "record 1: not an object"),
    ("users.txt", "", "must end in .csv or .json"),
])
def test_T12_unreadable_files_are_refused(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportRefused, match=reason):
        import_users(path)
    assert not User.objects.exists()


def test_T12_import_users_command_reports_refusals_and_success(tmp_path, capsys):
    bad = write_csv(tmp_path / "bad.csv", [row("a", "abc", "md5"), row("b", md5("x"), "md5", role="Nope")])
    assert bastion_cli(["import-users", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "Nothing was imported" in err and "line 2: not an MD5 digest" in err and "line 3: there is no role" in err
    good = write_csv(tmp_path / "good.csv", [{"username": "a", "password_hash": md5("pw-a")}])
    assert bastion_cli(["import-users", "--format", "md5", str(good)]) == 0
    out = capsys.readouterr().out
    assert "Imported 1 user(s)" in out and "run `bastion migrate-hashes`" in out
    assert bastion_cli(["import-users", str(tmp_path / "missing.csv")]) == 2


# --- migrate-hashes -----------------------------------------------------------------------
def _weak_left() -> int:
    return User.objects.filter(password__regex=r"^(md5|sha1)\$|^[0-9a-fA-F]{32}$").count()


def test_T12_migrate_hashes_wraps_every_weak_hash_and_the_passwords_still_work(tmp_path):
    shapes = ["md5 bare upper-case", "md5 django form", "sha1", "salted sha1, salt column", "salted md5",
              "django pbkdf2"]
    import_users(write_csv(tmp_path / "users.csv", [SHAPES[name][0] for name in shapes]))
    User.objects.create(username="ancient", password=md5("pw-ancient"))  # bare hex, as the oldest Django stored it
    result = migrate_hashes()
    assert (result.wrapped, result.skipped, result.remaining) == (6, 0, 0)
    assert _weak_left() == 0
    assert {password_of(SHAPES[name][0]["username"]).split("$")[0] for name in shapes} == {
        "argon2_md5", "argon2_sha1", "argon2_salted_sha1", "argon2_salted_md5", "pbkdf2_sha256"}
    assert password_of("s2").startswith("argon2_salted_sha1$NaCl$argon2id$")
    assert not logs_in("s2", "pw-s2 ")
    for name in shapes:
        entry, password, _ = SHAPES[name]
        assert logs_in(entry["username"], password), name
        assert password_of(entry["username"]).startswith("argon2$argon2id$"), name
    assert logs_in("ancient", "pw-ancient")
    assert migrate_hashes().wrapped == 0  # nothing left: a second run changes nothing


def test_T12_wrapped_hashers_use_djangos_argon2_parameters(tmp_path):
    import_users(write_csv(tmp_path / "users.csv", [row("m", md5("pw-m"), "md5")]))
    migrate_hashes()
    wrapped = password_of("m")
    hasher = WrappedUnsaltedMD5PasswordHasher()
    assert hasher.params() == Argon2PasswordHasher().params()
    assert not hasher.must_update(wrapped)  # Django's own comparison of the parameters
    assert "$m=102400,t=2,p=8$" in wrapped


def test_T12_legacy_hashers_never_make_new_hashes(settings, user):
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert make_password("anything").startswith("argon2$")
    assert user.password.startswith("argon2$")


def test_T12_migration_is_resumable_after_a_limit_or_an_interruption(tmp_path, cheap_argon2, capsys):
    import_users(write_csv(tmp_path / "users.csv", [row(f"u{i:02d}", md5(f"pw{i}"), "md5") for i in range(12)]))
    assert bastion_cli(["migrate-hashes", "--batch-size", "2", "--limit", "3"]) == 0
    assert "Wrapped 3 MD5/SHA1 hash(es)" in capsys.readouterr().out
    assert weak_hash_users().count() == 9

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl+C right after the first batch committed

    with pytest.raises(KeyboardInterrupt):
        migrate_hashes(batch_size=4, on_progress=interrupt)
    assert weak_hash_users().count() == 5
    runs = AuditEvent.objects.filter(action="user.hashes_wrapped").order_by("seq")
    assert [(e.details["wrapped"], e.details["remaining"], e.details["interrupted"]) for e in runs] == [
        (3, 9, False), (4, 5, True)]
    assert bastion_cli(["migrate-hashes", "--batch-size", "4"]) == 0
    assert weak_hash_users().count() == 0
    assert AuditEvent.objects.filter(action="user.hashes_wrapped").count() == 3
    assert all(logs_in(f"u{i:02d}", f"pw{i}") for i in (0, 5, 11))


def test_T12_malformed_weak_hash_is_skipped_not_looped_on(cheap_argon2):
    User.objects.create(username="broken", password="md5$$nothex")
    User.objects.create(username="fine", password="md5$$" + md5("pw"))
    result = migrate_hashes(batch_size=1)
    assert (result.wrapped, result.skipped, result.remaining) == (1, 1, 1)
    assert password_of("broken") == "md5$$nothex" and not logs_in("broken", "nothex")


def test_T12_ten_thousand_md5_users_imported_migrated_and_still_logging_in(tmp_path, cheap_argon2, capsys):
    passwords = {f"legacy{i:05d}": f"old-password-{i}" for i in range(10_000)}
    path = write_csv(tmp_path / "users.csv", [row(name, md5(pw), "md5") for name, pw in passwords.items()])
    assert bastion_cli(["import-users", str(path)]) == 0
    assert User.objects.filter(password__startswith="md5$$").count() == 10_000
    assert bastion_cli(["migrate-hashes"]) == 0
    out = capsys.readouterr().out
    assert "Wrapped 10,000 MD5/SHA1 hash(es)" in out and "users/s" in out and "0 left" in out
    assert not User.objects.filter(password__startswith="md5$").exists()
    assert _weak_left() == 0
    assert User.objects.filter(password__startswith="argon2_md5$$argon2id$").count() == 10_000
    for name in random.Random(12).sample(sorted(passwords), 5):
        assert logs_in(name, passwords[name]), name
        assert password_of(name).startswith("argon2$argon2id$")
    assert actions()[:2] == ["user.imported", "user.hashes_wrapped"]


# --- progress -------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_on_a_terminal_and_prints_plain_lines_otherwise():
    tty, plain = _Terminal(), io.StringIO()
    for stream in (tty, plain):
        bar = ProgressBar(stream)
        for done in range(0, 101, 5):
            bar.show(done / 100, f"{done} rows")
        bar.close()
    assert tty.getvalue().count("\r[") == 21 and "100% 100 rows" in tty.getvalue()
    assert "\r" not in plain.getvalue() and plain.getvalue().splitlines()[-1] == "100% 100 rows"
    assert len(plain.getvalue().splitlines()) == 11


# --- bastion check ----------------------------------------------------------------------------
def test_T12_check_warns_while_weak_hashes_remain_then_says_the_legacy_hashers_can_go(tmp_path, cheap_argon2):
    assert [m.id for m in check_legacy_hashes(None)] == ["bastion.I120"]  # fresh install: Info only
    import_users(write_csv(tmp_path / "users.csv", [row("a", md5("pw-a"), "md5"), row("b", sha1("pw-b"), "sha1")]))
    [warning] = check_legacy_hashes(None)
    assert warning.id == "bastion.W120" and warning.level == WARNING
    assert "2 user(s) still have MD5/SHA1" in warning.msg and "bastion migrate-hashes" in warning.hint
    assert "bastion.W120" in [m.id for m in run_checks(include_deployment_checks=True)]
    migrate_hashes()
    [info] = check_legacy_hashes(None)
    assert info.id == "bastion.I120" and info.level == INFO  # does not fail `bastion check`
    assert "unsalted_md5, unsalted_sha1, sha1, md5 can be removed" in info.msg
    assert "keep the argon2_* ones while 2 user(s)" in info.msg
    assert logs_in("a", "pw-a") and logs_in("b", "pw-b")
    [info] = check_legacy_hashes(None)
    assert "argon2_md5" in info.msg and "keep the" not in info.msg
