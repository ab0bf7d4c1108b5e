"""Structured logging: one JSON object per line, request id on every line (T35).

Standard-library loggers (Django's included) go through structlog's
ProcessorFormatter, so a newline inside a user name is escaped inside its
JSON string and can never forge a second line.
"""

from __future__ import annotations

from typing import Any

import structlog

SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(level: str) -> dict[str, Any]:
    """The LOGGING dict for Django; also configures structlog itself."""
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(sort_keys=True),
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json"},
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            # Request bodies never reach the log: django.request logs only the
            # path and status, and we keep it at WARNING.
            "django.request": {"level": "WARNING", "propagate": True},
            "django.db.backends": {"level": "INFO", "propagate": True},
            # sqlglot warns for every statement it keeps as an opaque command: console text, not news.
            "sqlglot": {"level": "ERROR", "propagate": True},
            # Alembic announces its plugins and its migration context at INFO for every schema change.
            "alembic": {"level": "WARNING", "propagate": True},
        },
    }


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
