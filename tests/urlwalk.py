"""Every URL pattern of the project as a concrete path, for tests that must cover them all."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver

SAMPLE_BY_NAME = {"uidb36": "1", "key": "set-password", "pk": "1", "id": "1",
                  "job_id": "00000000-0000-4000-8000-000000000001"}


def _concrete(route: str) -> str:
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE_BY_NAME.get(m.group(1), "1"), route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_BY_NAME.get(m.group(1), "1"), route)
    return route.lstrip("^").rstrip("$").replace("\\Z", "").replace("\\", "")


def _walk(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + _concrete(str(entry.pattern)))
        elif isinstance(entry, URLPattern):
            yield entry.name or "", "/" + prefix + _concrete(str(entry.pattern))


def all_url_paths() -> list[tuple[str, str]]:
    """(name, path) of every pattern; paths with parameters get sample values."""
    return sorted(set(_walk(get_resolver().url_patterns)))
