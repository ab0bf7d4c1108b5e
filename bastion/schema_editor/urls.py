from django.urls import path

from bastion.schema_editor import views

app_name = "schema_editor"
urlpatterns = [
    path("<int:connection_id>/schema/new-table/", views.new_table, name="new_table"),
]
