"""Structured logging: one ``key=value`` line per event, naming the model involved.

Every value is escaped (:func:`escape`): one event is always one line, whatever
a model name or a record id holds.
"""

from __future__ import annotations

import logging
import sys
import unicodedata

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


#: Characters that could end a log line or forge one, with how they are written instead.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with backslashes, quotes and every control or line-separator character escaped.

    Model names, versions, record ids and reasons come from whoever writes to
    the topics; escaped, none of them can end a log line or forge another.
    """
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _quote(value: object) -> str:
    text = str(value)
    escaped = escape(text)
    if not text or escaped != text or " " in text or "=" in text:
        return '"' + escaped + '"'
    return text


def configure(level: str | None = None) -> None:
    """Send logfmt lines to stderr at ``level`` (default ``$MODELSERVING_LOG_LEVEL`` or INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("modelserving")
    root.handlers[:] = [handler]
    from serving.settings import environment

    root.setLevel((level or environment().log_level).upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``modelserving`` namespace."""
    return logging.getLogger(f"modelserving.{name}")
