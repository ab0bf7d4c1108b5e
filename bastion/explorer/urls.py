from django.urls import path

from bastion.explorer import edit_views, views

app_name = "explorer"
urlpatterns = [
    path("<int:connection_id>/", views.database, name="database"),
    path("<int:connection_id>/table/", views.table, name="table"),
    path("<int:connection_id>/row/", views.row, name="row"),
    path("<int:connection_id>/download/", views.download, name="download"),
    path("<int:connection_id>/row/new/", edit_views.row_new, name="row_new"),
    path("<int:connection_id>/row/edit/", edit_views.row_edit, name="row_edit"),
    path("<int:connection_id>/row/delete/", edit_views.row_delete, name="row_delete"),
    path("<int:connection_id>/rows/delete/", edit_views.bulk_delete, name="bulk_delete"),
    path("<int:connection_id>/changes/", edit_views.table_changes, name="changes"),
    path("<int:connection_id>/changes/<int:seq>/revert/", edit_views.revert, name="revert"),
]
