"""Public pages opened from e-mailed links (mounted under /accounts/ next to allauth's)."""

from django.urls import path

from bastion.accounts import invitation_views

urlpatterns = [
    path("invitation/<str:token>/", invitation_views.invitation_accept, name="invitation_accept"),
    path("activate/<str:token>/", invitation_views.account_activate, name="account_activate"),
]
