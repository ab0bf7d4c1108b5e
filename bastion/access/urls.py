from django.urls import path

from bastion.access import views

app_name = "access"
urlpatterns = [
    path("", views.role_list, name="role_list"),
    path("new/", views.role_new, name="role_new"),
    path("<int:pk>/", views.role_detail, name="role_detail"),
    path("<int:pk>/edit/", views.role_update, name="role_update"),
    path("<int:pk>/delete/", views.role_delete, name="role_delete"),
    path("<int:pk>/members/add/", views.member_add, name="member_add"),
    path("<int:pk>/members/<int:user_pk>/remove/", views.member_remove, name="member_remove"),
    path("<int:pk>/grants/add/", views.grant_add, name="grant_add"),
    path("<int:pk>/grants/<int:grant_pk>/remove/", views.grant_remove, name="grant_remove"),
    path("<int:pk>/template/", views.template_apply, name="template_apply"),
    path("<int:pk>/two-person/", views.two_person_rule, name="two_person_rule"),
    path("<int:pk>/mfa/", views.mfa_requirement, name="mfa_requirement"),
]
