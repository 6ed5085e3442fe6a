"""A model's artifact bytes: inline, or read from a location under the model roots."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from serving.core.model import ModelDescriptor, sha256_hex
from serving.errors import ChecksumMismatch, CorruptModelError, ModelLocationError
from serving.settings import environment

#: The file that lists a directory's models (``modelserving train`` writes it; ``publish models`` reads it).
MANIFEST_NAME = "manifest.json"

#: The variable naming the model roots (read through ``serving.settings.environment``).
MODEL_ROOTS_ENV = "MODELSERVING_MODEL_ROOTS"


def default_model_roots() -> list[Path]:
    """Roots a by-reference model may live under: ``$MODELSERVING_MODEL_ROOTS`` or the cwd."""
    return environment().model_root_paths()


def resolve_artifact(descriptor: ModelDescriptor, model_roots: Sequence[Path] | None = None) -> bytes:
    """The artifact bytes of a descriptor: inline data, or the file/dir at its location."""
    content = descriptor.WhichOneof("content")
    if content == "data":
        data = descriptor.data
        if not data:
            raise CorruptModelError(f"model {descriptor.name!r} has empty data")
        if descriptor.sha256 and sha256_hex(data) != descriptor.sha256.lower():
            raise ChecksumMismatch(f"model {descriptor.name!r}: artifact SHA-256 does not match the descriptor")
        return data
    if content == "location":
        path = _checked_location(descriptor.location, model_roots)
        if path.is_dir():
            return archive_directory(path)
        data = path.read_bytes()
        if not data:
            raise CorruptModelError(f"model file {path} is empty")
        if descriptor.sha256 and sha256_hex(data) != descriptor.sha256.lower():
            raise ChecksumMismatch(f"model file {path}: SHA-256 does not match the descriptor")
        return data
    raise CorruptModelError(f"model {descriptor.name!r} carries neither data nor a location")


def _checked_location(location: str, model_roots: Sequence[Path] | None) -> Path:
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ModelLocationError(f"unsupported model location scheme {parsed.scheme!r} in {location!r}")
    path = Path(parsed.path if parsed.scheme == "file" else location).resolve()
    roots = [Path(r).resolve() for r in (model_roots if model_roots is not None else default_model_roots())]
    if not any(path.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots) or "(none)"
        raise ModelLocationError(f"model location {path} is outside the model roots {shown}")
    if not path.exists():
        raise ModelLocationError(f"model location {path} does not exist")
    return path


def archive_directory(path: Path) -> bytes:
    """A reproducible tar.gz of a directory (sorted entries, zero mtimes)."""
    buffer = io.BytesIO()

    def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    # gzip stamps the current time in its header unless told otherwise.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for item in sorted(path.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(path)), recursive=False, filter=_normalise)
    return buffer.getvalue()
