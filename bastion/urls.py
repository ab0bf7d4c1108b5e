from django.conf import settings
from django.urls import include, path

from bastion.accounts import views as account_views
from bastion.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path(settings.CSP_REPORT_PATH.strip("/") + "/", views.csp_report, name="csp_report"),
    path("accounts/login/", account_views.login, name="account_login"),
    path("accounts/", include("allauth.urls")),
    path("audit/", include("bastion.audit.urls")),
    path("db/", include("bastion.explorer.urls")),
    path("db/", include("bastion.console.urls")),
    path("db/", include("bastion.schema_editor.urls")),
    path("db/", include("bastion.transfer.urls")),
    path("approvals/", include("bastion.schema_editor.approval_urls")),
    path("jobs/", include("bastion.jobs.urls")),
    path("admin/users/", include("bastion.accounts.urls")),
    path("admin/roles/", include("bastion.access.urls")),
    path("admin/connections/", include("bastion.connections.urls")),
]

handler400 = "bastion.web.errors.bad_request"
handler403 = "bastion.web.errors.permission_denied"
handler404 = "bastion.web.errors.page_not_found"
handler500 = "bastion.web.errors.server_error"
