from django import forms

from bastion.audit.models import Outcome


class AuditFilterForm(forms.Form):
    """Filters of the audit log page; every value ends up as a bound ORM parameter."""

    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64, help_text="Prefix, e.g. login.")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any"), *Outcome.choices])
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
