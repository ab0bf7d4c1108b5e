from allauth.urls import build_provider_urlpatterns
from django.conf import settings
from django.urls import include, path

from bastion.accounts import mfa_views, session_views
from bastion.accounts import views as account_views
from bastion.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path(settings.CSP_REPORT_PATH.strip("/") + "/", views.csp_report, name="csp_report"),
    path("accounts/login/", account_views.login, name="account_login"),
    path("accounts/", include("bastion.accounts.link_urls")),  # invitation and activation links
    # allauth's parts one by one (not allauth.urls): its deprecated redirect URLs are left out.
    path("accounts/", include("allauth.account.urls")),
    path("accounts/2fa/totp/qr.svg", mfa_views.totp_qr, name="mfa_totp_qr"),
    # Before allauth's own route of the same name: the last required key cannot be removed.
    path("accounts/2fa/webauthn/keys/<int:pk>/remove/", mfa_views.remove_webauthn, name="mfa_remove_webauthn"),
    path("accounts/2fa/", include("allauth.mfa.urls")),
    path("accounts/sessions/", include("allauth.usersessions.urls")),
    path("accounts/sessions/<int:pk>/end/", session_views.end_own_session, name="usersession_end"),
    path("accounts/3rdparty/", include("allauth.socialaccount.urls")),
    path("accounts/", include(build_provider_urlpatterns())),
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
