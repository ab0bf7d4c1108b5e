from django.urls import path

from bastion.transfer import views

app_name = "transfer"
urlpatterns = [
    path("<int:connection_id>/export/", views.export_table, name="export_table"),
]
