from django.conf import settings
from django.db import models


class Engine(models.TextChoices):
    SQLITE = "sqlite", "SQLite"
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"


class TlsMode(models.TextChoices):
    DISABLE = "disable", "No TLS"
    REQUIRE = "require", "Require TLS (no certificate check)"
    VERIFY_FULL = "verify-full", "Require TLS and verify the server certificate and name"


class Connection(models.Model):
    """A target database registered by an administrator.

    The password is stored only as a MultiFernet token (bastion.connections.crypto);
    it is never rendered back into a form.
    """

    name = models.CharField(max_length=100, unique=True)
    engine = models.CharField(max_length=16, choices=Engine.choices)
    sqlite_path = models.CharField(max_length=1000, blank=True)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=255, blank=True)
    username = models.CharField(max_length=255, blank=True)
    password_encrypted = models.TextField(blank=True)
    tls_mode = models.CharField(max_length=16, choices=TlsMode.choices, default=TlsMode.REQUIRE)
    tls_ca_file = models.CharField(max_length=1000, blank=True)
    tls_client_cert_file = models.CharField(max_length=1000, blank=True)
    tls_client_key_file = models.CharField(max_length=1000, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
