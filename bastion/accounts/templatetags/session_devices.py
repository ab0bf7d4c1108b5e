"""``{{ session.user_agent|device }}``: "Firefox on Windows" instead of the whole user-agent string."""

from django import template

from bastion.accounts.sessions import describe_device

register = template.Library()
register.filter("device", describe_device)
