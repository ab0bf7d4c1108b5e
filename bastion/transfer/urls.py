from django.urls import path

from bastion.transfer import import_new_views, import_views, views

app_name = "transfer"
urlpatterns = [
    path("<int:connection_id>/export/", views.export_table, name="export_table"),
    path("<int:connection_id>/import/", import_views.import_table, name="import_table"),
    path("<int:connection_id>/import/preview/", import_views.import_preview, name="import_preview"),
    path("<int:connection_id>/import/new/", import_new_views.import_new_table, name="import_new_table"),
    path("<int:connection_id>/import/new/preview/", import_new_views.import_new_preview, name="import_new_preview"),
]
