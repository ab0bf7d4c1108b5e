"""Test-only URLs for the input kept across an expired session (bastion.accounts.pending)."""

from django.http import JsonResponse
from django.urls import path

from bastion.access.decorators import signed_in
from bastion.accounts.pending import keeps_input
from bastion.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


@keeps_input
@signed_in
def form(request):
    if request.method == "POST":
        return JsonResponse({"saved": dict(request.POST.lists())})
    resumed = request.resumed_post
    return JsonResponse({"resumed": None if resumed is None else dict(resumed.lists())})


@signed_in
def plain_form(request):
    return JsonResponse({"saved": dict(request.POST.lists())})


urlpatterns = [*urlpatterns, path("pending-test/form/", form), path("pending-test/plain/", plain_form)]
