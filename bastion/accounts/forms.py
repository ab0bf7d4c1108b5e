from django import forms
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator


class RolesField(forms.ModelMultipleChoiceField):
    def __init__(self, **kwargs):
        super().__init__(queryset=Group.objects.order_by("name"), required=False,
                         widget=forms.CheckboxSelectMultiple, **kwargs)


class NewUserForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()],
                               help_text="Letters, digits and @ . + - _ only.")
    email = forms.EmailField(required=False, help_text="Optional; used for password reset e-mails.")
    roles = RolesField()


class UserRolesForm(forms.Form):
    roles = RolesField()
