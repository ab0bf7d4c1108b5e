"""The connection form: structured fields only (T23); the password is never rendered back (T30)."""

from __future__ import annotations

from typing import Any

from django import forms

from bastion.connections.models import Connection, Engine, TlsMode


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100)
    engine = forms.ChoiceField(choices=Engine.choices)
    sqlite_path = forms.CharField(required=False, max_length=1000, label="SQLite file",
                                  help_text="A file inside the configured SQLite roots.")
    host = forms.CharField(required=False, max_length=255)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    database = forms.CharField(required=False, max_length=255)
    username = forms.CharField(required=False, max_length=255)
    password = forms.CharField(required=False, strip=False, max_length=1000,
                               widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
    clear_password = forms.BooleanField(required=False, label="Remove the stored password")
    tls_mode = forms.ChoiceField(choices=TlsMode.choices, initial=TlsMode.REQUIRE, label="TLS")
    tls_ca_file = forms.CharField(required=False, max_length=1000, label="CA certificate file")
    tls_client_cert_file = forms.CharField(required=False, max_length=1000, label="Client certificate file")
    tls_client_key_file = forms.CharField(required=False, max_length=1000, label="Client key file")
    updated_at = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, instance: Connection | None = None, **kwargs: Any):
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(instance, name) for name in SETTINGS_FIELDS}
            kwargs["initial"]["updated_at"] = instance.updated_at.isoformat()
        super().__init__(*args, **kwargs)
        if instance is None:
            del self.fields["clear_password"]
            del self.fields["updated_at"]
        elif instance.password_encrypted:
            self.fields["password"].widget.attrs["placeholder"] = "unchanged"
            self.fields["password"].help_text = ("Leave empty to keep the stored password; type it again if you "
                                                 "change the engine, host, port, user or TLS settings.")

    def settings(self) -> dict[str, Any]:
        """The cleaned settings, as the connection services take them."""
        return {name: self.cleaned_data[name] for name in SETTINGS_FIELDS}


SETTINGS_FIELDS = ("name", "engine", "sqlite_path", "host", "port", "database", "username", "tls_mode",
                   "tls_ca_file", "tls_client_cert_file", "tls_client_key_file")


class DeleteForm(forms.Form):
    confirmation = forms.CharField(max_length=100, label="Type the connection's name to confirm")
