from django.urls import path

from bastion.audit import views
from bastion.schema_editor import restore_views

app_name = "audit"
urlpatterns = [
    path("", views.audit_log, name="log"),
    path("<int:event_id>/restore/", restore_views.restore_table, name="restore_table"),
]
