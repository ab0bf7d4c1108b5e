"""Forms for the access admin pages. They validate; the services in bastion.access.roles save and audit.

A view does: form = GrantForm(request.POST); if form.is_valid():
add_grant(request.user, request, **form.cleaned_data).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from bastion.access.models import Action, ColumnMode, MaskRule, RoleOptions, TwoPersonOperation
from bastion.access.roles import BUILTIN_ROLES, FIXED_GRANT_ROLES, TEMPLATES, build_grant, clean_role_name
from bastion.connections.models import Connection

_BLANK = [("", "—")]


class GrantForm(forms.Form):
    role = forms.ModelChoiceField(queryset=Group.objects.exclude(name__in=FIXED_GRANT_ROLES).order_by("name"))
    action = forms.ChoiceField(choices=Action.choices)
    connection = forms.ModelChoiceField(queryset=Connection.objects.all(), required=False,
                                        help_text="Needed for every action but manage and audit_view.")
    schema = forms.CharField(max_length=255, required=False, strip=False, help_text="Empty: every schema.")
    table = forms.CharField(max_length=255, required=False, strip=False, help_text="Empty: every table.")
    column = forms.CharField(max_length=255, required=False, strip=False,
                             help_text="Empty: every column. Only for view, insert and update.")
    column_mode = forms.ChoiceField(choices=_BLANK + ColumnMode.choices, required=False,
                                    help_text="For a view grant on one column.")
    mask_rule = forms.ChoiceField(choices=_BLANK + MaskRule.choices, required=False,
                                  help_text="For a masked column.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            build_grant(**data)
        except ValidationError as error:
            self.add_error(None, error)  # field errors land on their fields
        return data


class RoleForm(forms.Form):
    """Create a role, or (with ``role``) rename it and change its description."""

    name = forms.CharField(max_length=150)
    description = forms.CharField(max_length=RoleOptions._meta.get_field("description").max_length,
                                  required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, role: Group | None = None, **kwargs: Any):
        self.role = role
        if role is not None and "initial" not in kwargs:
            options = getattr(role, "options", None)
            kwargs["initial"] = {"name": role.name, "description": options.description if options else ""}
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.role is not None and name == self.role.name:
            return name
        if self.role is not None and self.role.name in BUILTIN_ROLES:
            raise ValidationError(f"The built-in role {self.role.name} cannot be renamed.")
        try:
            return clean_role_name(name, self.role)
        except ValidationError as error:
            raise ValidationError(error.message_dict["name"]) from error


class MemberForm(forms.Form):
    """Add a user to a role."""

    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
                                  to_field_name="username")


class TemplateForm(forms.Form):
    """Apply the Viewer or Editor set of grants to a role on one connection."""

    template = forms.ChoiceField(choices=[(name, name) for name in TEMPLATES])
    connection = forms.ModelChoiceField(queryset=Connection.objects.order_by("name"), empty_label="Choose a connection")


class TwoPersonRuleForm(forms.Form):
    """The schema changes a role's members may only make once another person approves them."""

    operations = forms.MultipleChoiceField(choices=TwoPersonOperation.choices, required=False,
                                           widget=forms.CheckboxSelectMultiple,
                                           label="Needs a second person's approval")

    def __init__(self, *args: Any, role: Group | None = None, **kwargs: Any):
        if role is not None and "initial" not in kwargs:
            options = getattr(role, "options", None)
            kwargs["initial"] = {"operations": options.two_person_operations() if options else []}
        super().__init__(*args, **kwargs)


class MFARequirementForm(forms.Form):
    require_mfa = forms.BooleanField(required=False, label="Members must use two-factor authentication")


class DeleteRoleForm(forms.Form):
    confirmation = forms.CharField(label="Type the role's name to confirm", max_length=150, strip=False,
                                   widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
