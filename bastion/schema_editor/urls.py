from django.urls import path

from bastion.schema_editor import alter_views, drop_views, views

app_name = "schema_editor"
urlpatterns = [
    path("<int:connection_id>/schema/new-table/", views.new_table, name="new_table"),
    path("<int:connection_id>/schema/alter-table/", alter_views.alter_table, name="alter_table"),
    path("<int:connection_id>/schema/drop-table/", drop_views.drop_table, name="drop_table"),
]
