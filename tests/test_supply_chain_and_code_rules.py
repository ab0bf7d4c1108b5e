"""T25 (no command execution or unsafe deserialisation in the code) and T39 (pinned, hashed deps)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = sorted((ROOT / "bastion").rglob("*.py"))
TEMPLATES = sorted((ROOT / "bastion").rglob("*.html"))

FORBIDDEN_PY = {
    "os.system": r"\bos\.system\(",
    "os.popen": r"\bos\.popen\(",
    "shell=True": r"shell\s*=\s*True",
    "eval": r"(?<![\w.])eval\(",
    "exec": r"(?<![\w.])exec\(",
    "pickle": r"\bpickle\b|\bshelve\b|\bmarshal\.loads",
    "yaml.load": r"yaml\.load\(",
    "mktemp": r"tempfile\.mktemp\(",
    "mark_safe": r"\bmark_safe\(",
    "random for secrets": r"\brandom\.(random|randint|choice|randrange)\(",
    "SQL by formatting": r"execute\(\s*f[\"']|\.format\([^)]*\)\s*\)?\s*#?.*\b(SELECT|INSERT|UPDATE|DELETE)\b",
}
FORBIDDEN_HTML = {
    # A JSON data block (type="application/json", as Django's json_script writes) is never run.
    "inline script": r"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")[^>]*>",
    "style attribute": r"\sstyle\s*=",
    "event handler attribute": r"\son[a-z]+\s*=",
    "|safe": r"\|\s*safe\b",
    "autoescape off": r"autoescape\s+off",
    "javascript: URL": r"javascript:",
}
# The one reviewed exception: the CSP report endpoint reads no session (see its comment).
ALLOWED_CSRF_EXEMPT = {ROOT / "bastion/web/views.py"}


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_T25_no_dangerous_calls_in_code(path):
    text = path.read_text()
    for name, pattern in FORBIDDEN_PY.items():
        assert not re.search(pattern, text), f"{path}: {name}"
    if path not in ALLOWED_CSRF_EXEMPT:
        assert "csrf_exempt" not in text, f"{path}: csrf_exempt"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_T05_T25_no_inline_script_or_unsafe_output_in_templates(path):
    text = path.read_text()
    for name, pattern in FORBIDDEN_HTML.items():
        assert not re.search(pattern, text, re.IGNORECASE), f"{path}: {name}"


def test_T25_subprocess_only_with_argument_lists():
    for path in CODE:
        for line in path.read_text().splitlines():
            if "subprocess." in line:
                assert "shell" not in line, f"{path}: {line}"


def test_T25_bandit_finds_nothing_at_medium_or_higher():
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "--quiet", "-c", str(ROOT / "pyproject.toml"), "-r",
         str(ROOT / "bastion"), "--severity-level", "medium", "--format", "txt"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("lock", ["base.lock", "dev.lock"])
def test_T39_every_locked_requirement_has_a_hash(lock):
    text = (ROOT / "requirements" / lock).read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.\-]+)==\S+ \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n?)+)",
                              text, re.MULTILINE)
    pinned = re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.MULTILINE)
    assert requirements and len(requirements) == len(pinned)
    assert not re.search(r"^[A-Za-z0-9_.\-]+(>=|<=|~=|>|<)", text, re.MULTILINE)


def test_T39_install_uses_hash_checking():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes" in makefile
    installs = [line for line in makefile.splitlines() if "$(PIP_INSTALL) -r" in line]
    assert installs and all("lock" in line for line in installs)


def test_T39_runtime_dependencies_are_in_the_lock():
    lock = (ROOT / "requirements/base.lock").read_text().lower()
    for name in ["django", "django-allauth", "django-csp", "argon2-cffi", "cryptography", "structlog",
                 "gunicorn", "whitenoise"]:
        assert f"\n{name}==" in lock, name
