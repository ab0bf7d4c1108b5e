"""Error pages: a short plain message and the correlation id, never details (T32).

The full story (exception, traceback, SQL) goes to the log under the same
request id, so an operator can find it from what the user reports.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from bastion.logs import get_logger

log = get_logger("bastion.errors")

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Please go back and try again."),
    403: ("Access denied", "You do not have permission to do this."),
    404: ("Not found", "There is nothing at this address."),
    429: ("Too many attempts", "Too many attempts from here. Wait a few minutes and try again."),
    500: ("Something went wrong", "The error has been logged. Nothing was changed by the failed request."),
}


def validation_message(exc: ValidationError) -> str:
    """A service's ValidationError as one plain sentence for the page that caused it."""
    return " ".join(exc.messages)


def error_response(request: HttpRequest, status: int, message: str | None = None) -> HttpResponse:
    title, default = MESSAGES[status]
    context = {"status": status, "title": title, "message": message or default}
    return render(request, "web/error.html", context, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors and no user lookups here: whatever broke the view may
    # break them too. Only the static layout and the correlation id.
    template = loader.get_template("web/error.html")
    title, message = MESSAGES[500]
    body = template.render(
        {"status": 500, "title": title, "message": message, "request_id": getattr(request, "request_id", ""),
         "minimal": True}
    )
    return HttpResponse(body, status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    log.warning("csrf_failure", reason=reason, path=request.path)
    return error_response(
        request, 403,
        "The form had expired or did not come from this site. Reload the page and submit it again.",
    )
