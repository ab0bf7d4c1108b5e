"""Connection settings checks that need no server: TLS file paths (T23, T29)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from bastion.connections.engines import postgresql_tls_arguments
from bastion.connections.models import Connection
from bastion.connections.validation import validate
from bastion.tls import make_self_signed

pytestmark = pytest.mark.django_db
PG = {"name": "pg", "engine": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "app", "username": "app"}
COLON = "A ':' is not allowed in this path: the database driver would read it as an OpenSSL engine and key name."


@pytest.fixture
def colon_files(tmp_path, settings):
    """A real certificate and key whose file names hold a colon, as "engine:key" would."""
    settings.TARGET_HOSTS_ALLOWED = []
    cert, key = tmp_path / "pkcs11:cert.pem", tmp_path / "pkcs11:key.pem"
    make_self_signed(cert, key, ["db.example"])
    return str(cert), str(key)


@pytest.mark.parametrize("field", ["tls_ca_file", "tls_client_cert_file", "tls_client_key_file"])
def test_T23_a_colon_in_a_tls_file_path_is_refused(colon_files, tmp_path, field):
    cert, key = colon_files
    plain_cert, plain_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(plain_cert, plain_key, ["db.example"])
    files = {"tls_ca_file": str(plain_cert), "tls_client_cert_file": str(plain_cert),
             "tls_client_key_file": str(plain_key)}
    files[field] = cert if field != "tls_client_key_file" else key
    connection = Connection(**PG, tls_mode="verify-full", **files)
    with pytest.raises(ValidationError) as caught:
        validate(connection)
    assert caught.value.message_dict == {field: [COLON]}


def test_T23_a_colon_in_a_stored_tls_path_never_reaches_libpq(colon_files):
    cert, key = colon_files
    with pytest.raises(ValueError, match="OpenSSL engine"):
        postgresql_tls_arguments(Connection(**PG, tls_mode="require", tls_client_cert_file=cert,
                                            tls_client_key_file=key))
