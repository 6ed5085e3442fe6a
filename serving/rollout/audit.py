"""Which model scored a record, and the version's life around it: the audit trail, without Kafka.

:func:`audit` takes every ``ServingResult`` and every ``ModelEvent`` (the
results and model-events topics read to their end) and answers, for each
result carrying the record id (normally one; several are all reported):

* the model that scored it: name, version, artifact sha256, role (an empty
  role is a result from before roles: the champion), the record's ts and
  where it was read (topic, partition, offset);
* when that version took that role (**deployed**) and when it left it
  (**retired**, None while it still holds it);
* who signed it (``signed_by`` of its events; "" is unsigned, None unknown).

How the events are read (per data type, in ``ts`` order, stable): a version
takes a role by ``PROMOTED`` / ``ROLLED_BACK`` (champion), ``ROLE_SET`` (its
``role``; the same role again is no new deployment), or ``ACCEPTED`` (its
``role``, without one the champion; but none when the next event about the
version, before any other ``ACCEPTED`` of the data type, is ``STAGED``: it was
accepted while pinned; nor, for an ``ACCEPTED`` without a role, when it is a
``ROLE_SET``, which then gives the role). It leaves the role by
``RETIRED`` or ``STAGED`` of it, by taking another role, or, for the roles
one version holds at a time (champion, canary, decoy), when another version
takes that role. Schema events (``subject == "schema"``) are not about models.
Events and results of the same version must agree on the sha256 when both
carry one.

A version may have held its role several times (rolled back to): the time
span that contains the record's ts is chosen, else the last one begun by
then, else the first; the others are listed too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from serving.errors import ServingError
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.rollout.control import CANARY, CHAMPION, DECOY

#: Roles one version holds at a time: another taking it ends the first one's span.
_SINGLE_HOLDER = frozenset({CHAMPION, CANARY, DECOY})
_TAKES_CHAMPION = frozenset({ModelEvent.PROMOTED, ModelEvent.ROLLED_BACK})
_LEAVES = frozenset({ModelEvent.RETIRED, ModelEvent.STAGED})


class RecordNotScored(ServingError):
    """No result carries the record id asked about."""

    reason = "record not scored"


@dataclass(frozen=True)
class EventRef:
    """The event that began or ended a version's role: its kind's name, epoch ms, version and reason."""

    kind: str
    ts: int
    version: str
    reason: str = ""

    @classmethod
    def of(cls, event: ModelEvent) -> EventRef:
        """The reference to ``event``."""
        return cls(ModelEvent.Kind.Name(event.kind), event.ts, event.version, event.reason)

    def text(self) -> str:
        """``2026-12-01T23:00:00.000Z (PROMOTED of v2: why)``."""
        why = f": {self.reason}" if self.reason else ""
        return f"{_iso(self.ts)} ({self.kind} of {self.version}{why})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"kind": self.kind, "ts": self.ts, "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class Span:
    """One time a version held a role: the event that gave it, and the one that ended it (None: holds it still)."""

    deployed: EventRef
    retired: EventRef | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "deployed": self.deployed.as_dict(),
            "retired": None if self.retired is None else self.retired.as_dict(),
        }


@dataclass(frozen=True)
class ScoredBy:
    """One result of the record and the life of the version that produced it."""

    result: ServingResult
    #: The result's role, "champion" when it carries none.
    role: str
    #: The span the record fell in (see the module docstring), None when no event shows the version in the role.
    span: Span | None = None
    #: Every other span of the version in that role, in order.
    other_spans: tuple[Span, ...] = ()
    #: Key id that signed the version, "" unsigned, None when no event of the version is known.
    signed_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        r = self.result
        return {
            "record_id": r.record_id,
            "data_type": r.data_type,
            "model_name": r.model_name,
            "model_version": r.model_version,
            "model_sha256": r.model_sha256,
            "role": self.role,
            "record_ts": r.record_ts,
            "source": {"topic": r.source_topic, "partition": r.source_partition, "offset": r.source_offset},
            "score": r.score,
            "error": r.error,
            "deployed": None if self.span is None else self.span.deployed.as_dict(),
            "retired": None if self.span is None or self.span.retired is None else self.span.retired.as_dict(),
            "other_spans": [s.as_dict() for s in self.other_spans],
            "signed_by": self.signed_by,
        }

    def lines(self) -> list[str]:
        """What a person reads: the model, its coordinates, its deployment and signer."""
        r = self.result
        outcome = f"error: {r.error}" if r.error else f"score {r.score:.6g}"
        out = [
            f"{r.data_type} record {r.record_id!r} (ts {_iso(r.record_ts)}) was scored by {r.model_name} "
            f"version {r.model_version} as {self.role}: {outcome}",
            f"  artifact sha256 {r.model_sha256 or '(not reported)'}",
            f"  read from {r.source_topic or '(unknown topic)'} partition {r.source_partition} "
            f"offset {r.source_offset}",
        ]
        if self.span is None:
            out.append(f"  deployed: no event shows {r.model_version} as {self.role}")
        else:
            out.append(f"  deployed: {self.span.deployed.text()}")
            retired = self.span.retired
            out.append(f"  retired:  {retired.text() if retired else 'no, it still serves'}")
        for other in self.other_spans:
            until = other.retired.text() if other.retired else "now"
            out.append(f"  also {self.role} from {other.deployed.text()} until {until}")
        signer = {None: "unknown (no event of this version)", "": "unsigned"}.get(self.signed_by, self.signed_by)
        out.append(f"  signed by: {signer}")
        return out


@dataclass(frozen=True)
class AuditAnswer:
    """Every result of one record id (normally one) and what the events say about each one's model."""

    record_id: str
    scored: tuple[ScoredBy, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        """For humans: each result's lines; a warning first when the record was scored more than once."""
        out = []
        if len(self.scored) > 1:
            out.append(f"warning: record {self.record_id!r} has {len(self.scored)} results (expected one)")
        for scored in self.scored:
            out.extend(scored.lines())
        return out

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: the record id and one entry per result."""
        return {"record_id": self.record_id, "results": [s.as_dict() for s in self.scored]}


def audit(record_id: str, results: Iterable[ServingResult], events: Iterable[ModelEvent]) -> AuditAnswer:
    """Answer which model scored ``record_id`` and that version's deployment (see the module docstring).

    ``results`` are scanned once and only the record's are kept, so a whole
    topic may stream through; ``events`` are kept (model events are few).

    Raises:
        RecordNotScored: no result carries ``record_id``.
    """
    mine, seen = [], 0
    for result in results:
        seen += 1
        if result.record_id == record_id:
            mine.append(result)
    if not mine:
        raise RecordNotScored(f"record {record_id!r} was never scored: none of the {seen:,} results read carries it")
    by_type: dict[str, list[ModelEvent]] = {}
    for event in events:
        if event.subject != "schema":
            by_type.setdefault(event.data_type, []).append(event)
    for listed in by_type.values():
        listed.sort(key=lambda e: e.ts)  # stable: equal ts keep the topic's order
    return AuditAnswer(record_id, tuple(_scored_by(r, by_type.get(r.data_type, [])) for r in mine))


#: Reads one topic to its end: its message values (None for a tombstone).
TopicReader = Callable[[str], Iterable[bytes | None]]

M = TypeVar("M", bound=Message)


def audit_topics(record_id: str, read: TopicReader, results_topic: str, events_topic: str) -> tuple[AuditAnswer, int]:
    """:func:`audit` over the results and model-events topics as ``read`` gives them, and how many were skipped.

    A message that does not decode is left out and counted (the second value); a tombstone is left out.

    Raises:
        RecordNotScored: no result carries ``record_id``.
    """
    skipped = [0]
    events = list(_decoded(read(events_topic), ModelEvent, skipped))
    answer = audit(record_id, _decoded(read(results_topic), ServingResult, skipped), events)
    return answer, skipped[0]


def _decoded(values: Iterable[bytes | None], kind: type[M], skipped: list[int]) -> Iterator[M]:
    for value in values:
        if not value:
            continue  # a tombstone or an empty value carries no result or event
        try:
            yield kind.FromString(bytes(value))
        except (DecodeError, UnicodeDecodeError):  # UnicodeDecodeError: the pure-Python protobuf backend
            skipped[0] += 1


def _scored_by(result: ServingResult, events: list[ModelEvent]) -> ScoredBy:
    role = result.role or CHAMPION
    version, sha = result.model_version, result.model_sha256
    ours = [e for e in events if e.version == version and _same_artifact(e.sha256, sha)]
    spans = [s for v, r, s in _spans(events) if v == version and r == role and _same_artifact(s[0].sha256, sha)]
    chosen, others = _choose(spans, result.record_ts)
    signed_by = None
    for event in ([chosen[0]] if chosen else []) + ours:
        if event.sha256 or event.signed_by:  # an event that knows the artifact knows its signer
            signed_by = event.signed_by
            break
    return ScoredBy(
        result,
        role,
        span=None if chosen is None else _span(chosen),
        other_spans=tuple(_span(s) for s in others),
        signed_by=signed_by,
    )


def _same_artifact(a: str, b: str) -> bool:
    return not a or not b or a == b


def _role_taken(events: list[ModelEvent], i: int) -> str | None:
    """The role ``events[i]`` gives its version, or None."""
    event = events[i]
    if event.kind in _TAKES_CHAMPION:
        return event.role or CHAMPION
    if event.kind == ModelEvent.ROLE_SET:
        return event.role or None
    if event.kind != ModelEvent.ACCEPTED:
        return None
    for later in events[i + 1 :]:
        if later.kind == ModelEvent.ACCEPTED:
            break
        if later.version == event.version:
            if later.kind == ModelEvent.STAGED:
                return None  # accepted while pinned: it waits, without a role
            if later.kind == ModelEvent.ROLE_SET and not event.role:
                return None  # joined as shadow, canary or decoy: the ROLE_SET says so
            break
    return event.role or CHAMPION


def _spans(events: list[ModelEvent]) -> list[tuple[str, str, tuple[ModelEvent, ModelEvent | None]]]:
    """Every (version, role, (deploying event, ending event or None)) of one data type's ordered events."""
    open_spans: dict[str, tuple[str, ModelEvent]] = {}  # version -> (role, deploying event)
    done: list[tuple[str, str, tuple[ModelEvent, ModelEvent | None]]] = []

    def close(version: str, ending: ModelEvent) -> None:
        role, began = open_spans.pop(version)
        done.append((version, role, (began, ending)))

    for i, event in enumerate(events):
        taken = _role_taken(events, i)
        if taken is not None and open_spans.get(event.version, ("",))[0] == taken:
            continue  # the lineup's echo of the role the admission already reported (ACCEPTED, then ROLE_SET)
        if taken is not None:
            if event.version in open_spans:
                close(event.version, event)
            if taken in _SINGLE_HOLDER:
                for other in [v for v, (r, _) in open_spans.items() if r == taken]:
                    close(other, event)
            open_spans[event.version] = (taken, event)
        elif event.kind in _LEAVES and event.version in open_spans:
            close(event.version, event)
    done.extend((v, r, (began, None)) for v, (r, began) in open_spans.items())
    return done


def _choose(spans: list, record_ts: int) -> tuple[Any, list]:
    """The span the record falls in, else the last begun by its ts, else the first; and the rest, in order."""
    if not spans:
        return None, []
    spans = sorted(spans, key=lambda s: s[0].ts)
    inside = [s for s in spans if s[0].ts <= record_ts and (s[1] is None or record_ts < s[1].ts)]
    begun = [s for s in spans if s[0].ts <= record_ts]
    chosen = (inside or begun)[-1] if inside or begun else spans[0]
    return chosen, [s for s in spans if s is not chosen]


def _span(pair: tuple[ModelEvent, ModelEvent | None]) -> Span:
    began, ended = pair
    return Span(EventRef.of(began), None if ended is None else EventRef.of(ended))


def _iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
