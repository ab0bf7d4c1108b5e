from django.urls import path

from bastion.accounts import invitation_views, mfa_views, session_views, user_views

app_name = "accounts"
urlpatterns = [
    path("", user_views.user_list, name="user_list"),
    path("new/", user_views.user_new, name="user_new"),
    path("invite/", invitation_views.invite, name="invite"),
    path("<int:pk>/invitation/resend/", invitation_views.invitation_resend, name="invitation_resend"),
    path("<int:pk>/invitation/revoke/", invitation_views.invitation_revoke, name="invitation_revoke"),
    path("<int:pk>/", user_views.user_detail, name="user_detail"),
    path("<int:pk>/roles/", user_views.user_roles, name="user_roles"),
    path("<int:pk>/active/", user_views.user_active, name="user_active"),
    path("<int:pk>/password/", user_views.user_reset_password, name="user_reset_password"),
    path("<int:pk>/sessions/end/", session_views.user_sessions_end_all, name="user_sessions_end_all"),
    path("<int:pk>/sessions/<int:session_pk>/end/", session_views.user_session_end, name="user_session_end"),
    path("<int:pk>/mfa/reset/", mfa_views.user_mfa_reset, name="user_mfa_reset"),
]
