"""Configuration: environment over TOML file over defaults; secrets from *_FILE paths."""

from __future__ import annotations

import pytest

from bastion import config


def test_defaults_are_production_mode(tmp_path):
    values = config.load({"BASTION_DATA_DIR": str(tmp_path)})
    assert values["dev"] is False and values["debug"] is False
    assert values["allowed_hosts"] == ["localhost", "127.0.0.1"]
    assert values["site_url"].startswith("https://")


def test_environment_overrides_toml_file(tmp_path):
    (tmp_path / "bastion.toml").write_text('site_url = "https://from-file.example"\nport = 9443\n')
    values = config.load({"BASTION_DATA_DIR": str(tmp_path), "BASTION_PORT": "10443"})
    assert values["site_url"] == "https://from-file.example"
    assert values["port"] == 10443


def test_explicit_config_file_and_lists(tmp_path):
    path = tmp_path / "conf.toml"
    path.write_text('allowed_hosts = ["bastion.example", "10.0.0.5"]\n')
    values = config.load({"BASTION_CONFIG": str(path), "BASTION_DATA_DIR": str(tmp_path)})
    assert values["allowed_hosts"] == ["bastion.example", "10.0.0.5"]
    env_list = config.load({"BASTION_ALLOWED_HOSTS": "a.example, b.example", "BASTION_DATA_DIR": str(tmp_path)})
    assert env_list["allowed_hosts"] == ["a.example", "b.example"]


def test_secret_from_file(tmp_path):
    secret = tmp_path / "db-password"
    secret.write_text("s3cret-from-file\n")
    values = config.load({"BASTION_DB_PASSWORD_FILE": str(secret), "BASTION_DATA_DIR": str(tmp_path)})
    assert values["db_password"] == "s3cret-from-file"


@pytest.mark.parametrize(("env", "message"), [
    ({"BASTION_DEV": "perhaps"}, "BASTION_DEV: expected yes/no"),
    ({"BASTION_PORT": "https"}, "BASTION_PORT: expected a whole number"),
    ({"BASTION_DB_ENGINE": "oracle"}, "expected sqlite or postgresql"),
    ({"BASTION_CONFIG": "/nonexistent/bastion.toml"}, "does not exist"),
    ({"BASTION_SECRET_KEY_FILE": "/nonexistent/key"}, "cannot read"),
])
def test_bad_values_name_their_source(tmp_path, env, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load({"BASTION_DATA_DIR": str(tmp_path), **env})


def test_unknown_or_invalid_toml_refused(tmp_path):
    (tmp_path / "bastion.toml").write_text("debgu = true\n")
    with pytest.raises(config.ConfigError, match="unknown setting"):
        config.load({"BASTION_DATA_DIR": str(tmp_path)})
    (tmp_path / "bastion.toml").write_text("this is = = not toml")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load({"BASTION_DATA_DIR": str(tmp_path)})


def test_markdown_table_lists_every_option():
    table = config.markdown_table()
    for option in config.OPTIONS:
        assert f"BASTION_{option.name.upper()}" in table
