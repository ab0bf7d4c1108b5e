from django.urls import path

from bastion.accounts import user_views

app_name = "accounts"
urlpatterns = [
    path("", user_views.user_list, name="user_list"),
    path("new/", user_views.user_new, name="user_new"),
    path("<int:pk>/", user_views.user_detail, name="user_detail"),
    path("<int:pk>/roles/", user_views.user_roles, name="user_roles"),
    path("<int:pk>/active/", user_views.user_active, name="user_active"),
    path("<int:pk>/password/", user_views.user_reset_password, name="user_reset_password"),
]
