from django.urls import path

from bastion.console import views

app_name = "console"
urlpatterns = [
    path("<int:connection_id>/console/", views.console, name="console"),
    path("<int:connection_id>/console/download/", views.download, name="download"),
    path("<int:connection_id>/console/draft/", views.save_draft, name="draft"),
    path("<int:connection_id>/console/history/", views.history, name="history"),
    path("<int:connection_id>/console/saved/", views.saved_queries, name="saved"),
    path("<int:connection_id>/console/saved/new/", views.save_query, name="save_query"),
    path("<int:connection_id>/console/saved/<int:pk>/delete/", views.delete_saved_query, name="delete_saved"),
]
