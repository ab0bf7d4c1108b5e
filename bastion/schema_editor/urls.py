from django.urls import path

from bastion.schema_editor import drop_views, views

app_name = "schema_editor"
urlpatterns = [
    path("<int:connection_id>/schema/new-table/", views.new_table, name="new_table"),
    path("<int:connection_id>/schema/drop-table/", drop_views.drop_table, name="drop_table"),
]
