"""Checkpoint and savepoint locations: local paths and URIs."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+:")  # file:/x, file:///x, s3://b/x


def as_uri(path_or_uri: str | Path) -> str:
    """A URI for a location: local paths become absolute ``file://`` URIs; URIs pass through."""
    text = str(path_or_uri)
    if _SCHEME.match(text):
        return text
    return Path(text).expanduser().resolve().as_uri()


def local_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI or plain path; None for a remote URI (s3://, hdfs://)."""
    if uri.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    if _SCHEME.match(uri):
        return None
    return Path(uri).expanduser().resolve()
