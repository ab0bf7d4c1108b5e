from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import public, signed_in
from bastion.access.policy import visible_connections
from bastion.logs import get_logger
from bastion.web.net import client_ip

log = get_logger("bastion.csp")

CSP_REPORT_MAX_BYTES = 16 * 1024


@require_safe
@signed_in
def home(request: HttpRequest) -> HttpResponse:
    """Permission: any signed-in user. Lists the databases their roles let them see."""
    return render(request, "web/home.html", {"connections": visible_connections(request.user)})


# Browsers send CSP reports without cookies' CSRF token; the view reads no
# session, changes no state and only writes a bounded log line, so it is the
# one view that is exempt.
@public
@csrf_exempt
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    """Permission: none (browsers post here). Logs a CSP violation report (T05, T36)."""
    body = request.body[:CSP_REPORT_MAX_BYTES]
    try:
        report = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        report = {"unparsed": body.decode("utf-8", "replace")}
    violation = report.get("csp-report", report) if isinstance(report, dict) else {"report": report}
    log.warning("csp_violation", ip=client_ip(request), report=violation)
    return HttpResponse(status=204)
