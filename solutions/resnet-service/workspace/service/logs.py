"""Structured logs: one JSON object per line on stderr, one line per request, with a request id.

Log collectors (the Docker daemon, Kubernetes, CloudWatch) keep a container's stderr; JSON lines
let them index every field, so "all requests with status 500 in the last hour" is a query, not a grep.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

LOGGER_NAME = "service"
REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is kept only when it is short and harmless; otherwise we make our own.
# Anything else could forge log lines or fill the disk.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message, and the record's
    ``fields`` (pass them with ``logger.info("request", extra={"fields": {...}})``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            # Tracebacks belong in the logs (for the operator), never in a response (for the world).
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> logging.Logger:
    """The service's logger, writing JSON lines to the current sys.stderr at ``level``.

    Safe to call again (every create_app does): it replaces its own handler instead of adding a
    second one, which would print every line twice.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_resnet_service", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._resnet_service = True
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # gunicorn's or pytest's root handlers must not print it a second time
    return logger


def request_id(incoming: str | None) -> str:
    """The client's X-Request-ID when it is safe to log, else a new random id."""
    if incoming and SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex
