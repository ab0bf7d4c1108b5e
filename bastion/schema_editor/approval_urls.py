from django.urls import path

from bastion.schema_editor import approval_views

app_name = "approvals"
urlpatterns = [
    path("", approval_views.approval_list, name="list"),
    path("<int:pk>/", approval_views.approval_decide, name="decide"),
]
