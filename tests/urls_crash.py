"""Test-only URLs that fail on purpose, to prove what a user sees when something breaks (T32)."""

from django.db import connection
from django.urls import path

from bastion.access.decorators import public
from bastion.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


@public
def crash(request):
    raise RuntimeError("SELECT secret FROM /etc/bastion/keys; password=hunter2")


@public
def database_crash(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM accounts_user")


urlpatterns = [*urlpatterns, path("crash/", crash), path("crash/db/", database_crash)]
