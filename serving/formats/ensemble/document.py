"""An ensemble's artifact: a JSON document, checked field by field with one-line errors.

::

    {
      "data_type": "iris",
      "budget_ms": 200,
      "mode": "wallclock",                      # or "declared"
      "decider": {"name": "plurality", "params": {"quorum": 2}},
      "members": [
        {"priority": 1, "descriptor": {"name": "lr", "version": "1", "format": "onnx",
                                       "data_base64": "...", "metadata": {"expected_latency_ms": "5"}}},
        {"priority": 2, "descriptor": {"name": "remote", "version": "1", "format": "oip",
                                       "location": "http://127.0.0.1:8080", "metadata": {"model_name": "iris"}}}
      ]
    }

A member's descriptor carries exactly one of ``data_base64`` (the model file,
inline), ``location`` (a model server's URL, for ``oip``) or
``protobuf_base64`` (a whole serialized ``ModelDescriptor``: what an ensemble
kept in state holds, see ``EnsembleModel.to_bytes``). Priorities are unique
whole numbers; a smaller one is a higher priority. The member with the
lowest priority is the **fallback**: in ``wallclock`` mode it is always
computed. In ``declared`` mode every member declares ``expected_latency_ms``
in its metadata.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from serving.core.model import ModelDescriptor
from serving.deciders.base import DeciderError
from serving.deciders.registry import resolve
from serving.errors import CorruptModelError

MODES = ("wallclock", "declared")
#: The metadata key a member declares its latency under (``declared`` mode).
EXPECTED_LATENCY = "expected_latency_ms"
_CONTENT_KEYS = ("data_base64", "location", "protobuf_base64")
_TOP_KEYS = {"data_type", "budget_ms", "mode", "decider", "members"}
_DESCRIPTOR_KEYS = {"name", "version", "format", "description", "metadata", "data_type", *_CONTENT_KEYS}


class EnsembleDocumentError(CorruptModelError):
    """An ensemble document that is not JSON, or breaks its schema; the message names the field."""

    reason = "bad ensemble document"


@dataclass(frozen=True)
class MemberSpec:
    """One member: its priority and its descriptor (bound to the ensemble's data type)."""

    priority: int
    descriptor: ModelDescriptor

    @property
    def label(self) -> str:
        """``name:version``: how results name the member."""
        return f"{self.descriptor.name}:{self.descriptor.version}"


@dataclass(frozen=True)
class EnsembleDocument:
    """A checked ensemble document; ``members`` in priority order (the fallback last)."""

    data_type: str
    budget_ms: int
    mode: str
    decider: str
    params: dict[str, Any] = field(default_factory=dict)
    members: tuple[MemberSpec, ...] = ()

    def to_json(self, members: list[dict[str, Any]] | None = None) -> bytes:
        """The document as canonical JSON; ``members`` replaces the member entries (state form)."""
        body = {
            "data_type": self.data_type,
            "budget_ms": self.budget_ms,
            "mode": self.mode,
            "decider": {"name": self.decider, "params": self.params},
            "members": members if members is not None else [_member_json(m) for m in self.members],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_document(artifact: bytes, data_type: str | None = None) -> EnsembleDocument:
    """Check an ensemble document; ``data_type``: the ensemble descriptor's, which the document must match.

    Raises:
        EnsembleDocumentError: one line naming the first problem (``members[1].priority: ...``).
    """
    try:
        body = json.loads(artifact)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _error("", f"not JSON: {exc}") from exc
    _expect(body, dict, "", "an object")
    _no_extra(body, _TOP_KEYS, "")
    doc_type = _string(body, "data_type", "")
    if data_type is not None and doc_type != data_type:
        raise _error("data_type", f"{doc_type!r} is not the ensemble's data type {data_type!r}")
    budget = body.get("budget_ms")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise _error("budget_ms", f"must be a positive whole number of milliseconds, not {budget!r}")
    mode = body.get("mode")
    if mode not in MODES:
        raise _error("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    decider = body.get("decider")
    _expect(decider, dict, "decider", 'an object {"name": ..., "params": {...}}')
    _no_extra(decider, {"name", "params"}, "decider")
    params = decider.get("params", {})
    _expect(params, dict, "decider.params", "an object")
    members = body.get("members")
    if not isinstance(members, list) or not members:
        raise _error("members", "must be a non-empty list")
    specs = [_member(m, i, doc_type, mode) for i, m in enumerate(members)]
    _unique([s.priority for s in specs], "priority")
    _unique([s.descriptor.name for s in specs], "descriptor.name")
    specs.sort(key=lambda s: s.priority)
    name = _string(decider, "name", "decider")
    try:
        resolve(name, params)  # an unknown decider or a bad parameter is the document's error
    except DeciderError as exc:
        raise _error("decider", str(exc)) from exc
    return EnsembleDocument(doc_type, budget, mode, name, params, tuple(specs))


def _member(entry: Any, i: int, data_type: str, mode: str) -> MemberSpec:
    where = f"members[{i}]"
    _expect(entry, dict, where, 'an object {"priority": ..., "descriptor": {...}}')
    _no_extra(entry, {"priority", "descriptor"}, where)
    priority = entry.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise _error(f"{where}.priority", f"must be a whole number, not {priority!r}")
    descriptor = member_descriptor(entry.get("descriptor"), f"{where}.descriptor", data_type)
    if mode == "declared":
        declared = descriptor.metadata.get(EXPECTED_LATENCY, "")
        try:
            latency = float(declared)
        except ValueError:
            latency = math.nan
        if not (math.isfinite(latency) and latency >= 0):
            raise _error(
                f"{where}.descriptor.metadata.{EXPECTED_LATENCY}",
                f"declared mode needs every member's latency in milliseconds, not {declared!r}",
            )
    return MemberSpec(priority, descriptor)


def member_descriptor(body: Any, where: str, data_type: str) -> ModelDescriptor:
    """The ``ModelDescriptor`` a member entry describes, bound to the ensemble's ``data_type``.

    Raises:
        EnsembleDocumentError: a missing or malformed field, named by ``where``.
    """
    from serving.errors import UnknownModelType
    from serving.formats.registry import parse_format, set_format

    _expect(body, dict, where, "an object")
    _no_extra(body, _DESCRIPTOR_KEYS, where)
    given = [k for k in _CONTENT_KEYS if k in body]
    if len(given) != 1:
        raise _error(where, f"needs exactly one of {', '.join(_CONTENT_KEYS)}, got {given or 'none'}")
    (content,) = given
    if content == "protobuf_base64":
        descriptor = ModelDescriptor()
        try:
            descriptor.ParseFromString(_base64(body, content, where))
        except DecodeError as exc:
            raise _error(f"{where}.{content}", f"is not a ModelDescriptor: {exc}") from exc
    else:
        metadata = body.get("metadata", {})
        _expect(metadata, dict, f"{where}.metadata", "an object of strings")
        if not all(isinstance(v, str) for v in metadata.values()):
            raise _error(f"{where}.metadata", "values must be strings")
        descriptor = ModelDescriptor(
            name=_string(body, "name", where),
            version=_string(body, "version", where),
            description=str(body.get("description", "")),
            data_type=data_type,
            metadata=metadata,
        )
        try:
            set_format(descriptor, _string(body, "format", where))
        except UnknownModelType as exc:
            raise _error(f"{where}.format", str(exc)) from exc
        if content == "location":
            descriptor.location = _string(body, "location", where)
        else:
            descriptor.data = _base64(body, content, where)
    if descriptor.data_type != data_type:
        raise _error(f"{where}.data_type", f"{descriptor.data_type!r} is not the ensemble's {data_type!r}")
    if descriptor.format == "ensemble" or (descriptor.format and parse_format(descriptor.format) == "ensemble"):
        raise _error(f"{where}.format", "an ensemble cannot be a member of an ensemble")
    if not descriptor.name or not descriptor.version:
        raise _error(where, "needs a name and a version")
    return descriptor


def _member_json(spec: MemberSpec) -> dict[str, Any]:
    """A member entry in its state form: the whole descriptor, serialized."""
    return {"priority": spec.priority, "descriptor": {"protobuf_base64": encode(spec.descriptor.SerializeToString())}}


def encode(data: bytes) -> str:
    """Bytes as standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def _base64(body: dict[str, Any], key: str, where: str) -> bytes:
    text = body.get(key)
    try:
        data = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError) as exc:
        raise _error(f"{where}.{key}", f"is not base64: {exc}") from exc
    if not data:
        raise _error(f"{where}.{key}", "must be non-empty base64 text")
    return data


def _string(body: dict[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _error(f"{where}.{key}" if where else key, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _expect(value: Any, kind: type, where: str, what: str) -> None:
    if not isinstance(value, kind):
        raise _error(where, f"must be {what}, not {type(value).__name__}")


def _no_extra(body: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise _error(where, f"unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _unique(values: list[Any], what: str) -> None:
    seen = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _error(f"members[{i}].{what}", f"{value!r} is used by another member; each must be unique")
        seen.add(value)


def _error(where: str, problem: str) -> EnsembleDocumentError:
    text = f"ensemble document: {where}: {problem}" if where else f"ensemble document: {problem}"
    return EnsembleDocumentError(" ".join(text.split()))  # one line, whatever the JSON error said
