from django.urls import path

from bastion.connections import views

app_name = "connections"
urlpatterns = [
    path("", views.connection_list, name="list"),
    path("new/", views.connection_new, name="new"),
    path("<int:pk>/edit/", views.connection_edit, name="edit"),
    path("<int:pk>/test/", views.connection_test, name="test"),
    path("<int:pk>/enabled/", views.connection_enabled, name="enabled"),
    path("<int:pk>/delete/", views.connection_delete, name="delete"),
]
