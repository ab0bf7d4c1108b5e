"""`bastion check` warns when a target's login can reach the server's files or programs (T21)."""

from __future__ import annotations

import uuid

import pytest

from bastion.connections.engines import dispose_engine
from bastion.connections.models import Connection
from bastion.console.checks import privilege_problems, target_privilege_warnings
from tests.conftest import STRONG_PASSWORD
from tests.engines import mysql_target, need, postgresql_target  # noqa: F401
from tests.test_cli import bastion

pytestmark = pytest.mark.django_db


def test_T21_a_postgresql_superuser_login_is_reported(postgresql_target):  # noqa: F811
    assert "is a superuser" in privilege_problems(postgresql_target.connection)
    [warning] = target_privilege_warnings()
    assert "postgresql target" in warning and "superuser" in warning


def test_T21_a_least_privilege_postgresql_role_passes(postgresql_target):  # noqa: F811
    role = f"bastion_low_{uuid.uuid4().hex[:8]}"
    postgresql_target.run(f'CREATE ROLE "{role}" LOGIN')
    low = Connection.objects.create(name="low", engine="postgresql", host="127.0.0.1", port=5432,
                                    database="test", username=role, tls_mode="disable")
    try:
        assert privilege_problems(low) == []
    finally:
        dispose_engine(low)
        postgresql_target.run(f'DROP ROLE "{role}"')


def test_T21_a_mysql_login_with_file_privilege_is_reported(mysql_target):  # noqa: F811
    problems = privilege_problems(mysql_target.connection)  # root: ALL PRIVILEGES ON *.*
    assert any("ALL PRIVILEGES" in p for p in problems)


def test_T21_a_least_privilege_mysql_login_passes(mysql_target):  # noqa: F811
    user = f"low_{uuid.uuid4().hex[:8]}"
    database = mysql_target.schema_name
    mysql_target.run(f"CREATE USER '{user}'@'%%' IDENTIFIED BY ''",
                     f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{user}'@'%%'")
    low = Connection.objects.create(name="low", engine="mysql", host="127.0.0.1", port=3306,
                                    database=database, username=user, tls_mode="disable")
    try:
        assert privilege_problems(low) == []
        mysql_target.run(f"GRANT FILE ON *.* TO '{user}'@'%%'")
        dispose_engine(low)
        assert any("FILE" in p for p in privilege_problems(low))
    finally:
        dispose_engine(low)
        mysql_target.run(f"DROP USER '{user}'@'%%'")


def test_T21_bastion_check_fails_on_a_superuser_target(tmp_path):
    need("postgresql")
    secret = tmp_path / "admin-password"
    secret.write_text(STRONG_PASSWORD + "\n")
    data = tmp_path / "var"
    assert bastion("init", "--no-demo", "--admin-password-file", str(secret), data_dir=data).returncode == 0
    added = bastion("manage", "shell", "-c",
                    "from bastion.connections.models import Connection as C; C.objects.create(name='pg as root', "
                    "engine='postgresql', host='127.0.0.1', port=5432, database='test', username='postgres', "
                    "tls_mode='disable')", data_dir=data)
    assert added.returncode == 0, added.stderr
    result = bastion("check", data_dir=data, env={"BASTION_ALLOW_ROOT": "1"})
    assert result.returncode != 0
    assert "“pg as root” is a superuser" in result.stderr
