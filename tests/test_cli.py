"""The `bastion` command: init, check (T40, T44), serve's refusals, createadmin."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks

from tests.conftest import STRONG_PASSWORD

BASTION = [sys.executable, "-m", "bastion.cli"]


def bastion(*args: str, env: dict[str, str] | None = None, data_dir: Path | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") and k != "DJANGO_SETTINGS_MODULE"}
    clean.update(env or {})
    prefix = ["--data-dir", str(data_dir)] if data_dir else []
    return subprocess.run([*BASTION, *prefix, *args], env=clean, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("bastion-data") / "var"
    secret = data.parent / "admin-password"
    secret.write_text(STRONG_PASSWORD + "\n")
    result = bastion("init", "--no-demo", "--admin-password-file", str(secret), data_dir=data)
    assert result.returncode == 0, result.stderr
    return data


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_T44_init_creates_private_data_dir_and_keys(initialised):
    assert mode(initialised) == 0o700
    for name in ["secret_key", "audit_key", "encryption_keys", "tls/key.pem", "bastion.sqlite3"]:
        assert mode(initialised / name) == 0o600, name
    assert (initialised / "tls/cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert len((initialised / "secret_key").read_text().strip()) >= 50


def test_init_creates_and_registers_the_demo_database_once(tmp_path):
    data = tmp_path / "var"
    first = bastion("init", data_dir=data)
    assert first.returncode == 0 and "demo database" in first.stdout
    demo = data / "databases" / "demo.sqlite3"
    assert mode(demo.parent) == 0o700
    import sqlite3

    with sqlite3.connect(f"file:{demo}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] > 100_000
    assert "demo" not in bastion("init", data_dir=data).stdout
    demo.unlink()  # the file gone but the connection still registered: init leaves both alone
    again = bastion("init", data_dir=data)
    assert again.returncode == 0 and "demo" not in again.stdout and not demo.exists()


def test_init_is_idempotent(initialised):
    keys = {name: (initialised / name).read_bytes() for name in ["secret_key", "audit_key", "tls/cert.pem"]}
    again = bastion("init", "--no-demo", data_dir=initialised)
    assert again.returncode == 0
    assert "nothing changed" in again.stdout
    assert keys == {name: (initialised / name).read_bytes() for name in keys}


def test_init_prints_one_time_password_once(tmp_path):
    first = bastion("init", "--no-demo", data_dir=tmp_path / "var")
    assert first.returncode == 0 and "One-time password:" in first.stdout
    second = bastion("init", "--no-demo", data_dir=tmp_path / "var")
    assert "One-time password" not in second.stdout


def test_init_writes_one_time_password_file_for_scripts(tmp_path):
    target = tmp_path / "otp"
    result = bastion("init", "--no-demo", "--one-time-password-file", str(target), data_dir=tmp_path / "var")
    assert result.returncode == 0
    password = target.read_text().strip()
    assert len(password) >= 20 and password not in result.stdout
    assert mode(target) == 0o600


def test_T40_check_passes_on_fresh_init(initialised):
    result = bastion("check", data_dir=initialised, env={"BASTION_ALLOW_ROOT": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"BASTION_DEV": "1", "BASTION_DEBUG": "1"}, "DEBUG is on"),
    ({"BASTION_ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS contains '*'"),
    ({"BASTION_SITE_URL": "http://bastion.example"}, "is not HTTPS"),
    ({"BASTION_AUDIT_KEY": "short"}, "audit HMAC key"),
    ({"BASTION_SECRET_KEY": "too-short"}, "SECRET_KEY"),
    ({"BASTION_HSTS_SECONDS": "0"}, "SECURE_HSTS_SECONDS"),
])
def test_T40_each_bad_setting_fails_check_with_its_message(initialised, env, message):
    result = bastion("check", data_dir=initialised, env={"BASTION_ALLOW_ROOT": "1", **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_T44_check_reports_readable_key_files(initialised):
    key = initialised / "audit_key"
    key.chmod(0o644)
    try:
        result = bastion("check", data_dir=initialised, env={"BASTION_ALLOW_ROOT": "1"})
    finally:
        key.chmod(0o600)
    assert result.returncode != 0
    assert f"chmod 600 {key}" in result.stderr


def test_T40_check_reports_guessable_admin_password(tmp_path):
    strong = tmp_path / "strong"
    strong.write_text(STRONG_PASSWORD)
    data = tmp_path / "var"
    bastion("init", "--no-demo", "--admin-password-file", str(strong), data_dir=data)
    # An operator sets a guessable password behind the policy's back (e.g. in the shell).
    reset = bastion("manage", "shell", "-c",
                    "from django.contrib.auth import get_user_model as g; u=g().objects.get(username='admin');"
                    "u.set_password('admin'); u.save()", data_dir=data)
    assert reset.returncode == 0, reset.stderr
    result = bastion("check", data_dir=data, env={"BASTION_ALLOW_ROOT": "1"})
    assert result.returncode != 0 and "guessable password" in result.stderr


def test_T44_serve_refuses_root_without_allow_root(initialised, monkeypatch, capsys):
    from bastion import cli

    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setenv("BASTION_DATA_DIR", str(initialised))
    assert cli.main(["serve"]) == 2
    assert "Refusing to run as root" in capsys.readouterr().err


def test_T40_serve_refuses_to_start_when_check_fails(initialised):
    result = bastion("serve", "--allow-root", "--port", "1", data_dir=initialised,
                     env={"BASTION_SITE_URL": "http://insecure.example"})
    assert result.returncode == 1
    assert "Refusing to start in production mode" in result.stderr


def test_serve_refuses_uninitialised_data_dir(tmp_path):
    result = bastion("serve", "--allow-root", data_dir=tmp_path / "empty")
    assert result.returncode == 2 and "bastion init" in result.stderr


def test_createadmin_refuses_weak_password_and_duplicates(initialised, tmp_path):
    weak = tmp_path / "weak"
    weak.write_text("password")
    result = bastion("createadmin", "second", "--password-file", str(weak), data_dir=initialised)
    assert result.returncode == 1 and "Password refused" in result.stderr
    created = bastion("createadmin", "second", data_dir=initialised)
    assert created.returncode == 0 and "One-time password" in created.stdout
    duplicate = bastion("createadmin", "second", data_dir=initialised)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def test_config_error_is_reported_plainly(initialised):
    result = bastion("check", data_dir=initialised, env={"BASTION_SESSION_IDLE_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert "BASTION_SESSION_IDLE_TIMEOUT: expected a whole number" in result.stderr


@pytest.mark.django_db
def test_T40_dev_mode_is_reported(settings):
    settings.DEV = True
    ids = [problem.id for problem in run_checks(include_deployment_checks=True)]
    assert "bastion.W001" in ids
