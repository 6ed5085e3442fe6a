"""Structured logging: one ``key=value`` line per event, naming the model involved."""

from __future__ import annotations

import logging
import os
import sys

_RESERVED = set(vars(logging.makeLogRecord({})))


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... event=... key=value ...`` (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record and its ``extra`` fields as one logfmt line."""
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        line = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure(level: str | None = None) -> None:
    """Send logfmt lines to stderr at ``level`` (default ``$MODELSERVING_LOG_LEVEL`` or INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("modelserving")
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("MODELSERVING_LOG_LEVEL", "INFO")).upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``modelserving`` namespace."""
    return logging.getLogger(f"modelserving.{name}")
