"""From lineup transitions to what a serving function does: events, dead letters, and the versions to keep.

Both Flink jobs hold, per data type, a :class:`~serving.rollout.lineup.Lineup`
(bytes) and the artifacts of the versions it remembers (``Model.to_bytes()``
by version). This module decides, without Flink, what an accepted model or a
``ModelControl`` message does to them:

* :func:`on_accepted`: a model the admission accepted takes the role its
  descriptor asks for (``metadata["role"]``, default champion; a canary's
  ``metadata["weight_bp"]``). A champion the lineup refuses (a downgrade, or
  the champion's own version) is **rejected** like any bad model: an event
  and a dead letter with the original bytes, and the old champion serves on.
* :func:`on_control`: a control message is applied; one that does not
  decode or cannot apply (an unknown or evicted version ...) becomes a
  ``CONTROL_REJECTED`` event and a dead letter with its reason and bytes.

Each outcome item becomes one ``ModelEvent`` (see the kinds in
``protos/model_event.proto``). :attr:`Change.serve` names the version that
must serve from now on when a transition changed the champion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from serving.codecs.outputs import dead_letter
from serving.core.model import Model
from serving.errors import ServingError
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.rollout.control import CHAMPION, ROLE_KEY, WEIGHT_KEY, parse_control
from serving.rollout.lineup import DEFAULT_KEEP, Lineup, LineupStateError, Outcome, VersionEntry
from serving.rollout.lineup_parts import (
    ACTIVATED,
    ADDED,
    EVICTED,
    PINNED,
    PROMOTED,
    REJECTED,
    RETIRED,
    ROLE_SET,
    ROLLED_BACK,
    STAGED,
    UNPINNED,
    WEIGHT_SET,
)

#: Outcome kind -> event kind (``activated`` by a control message is a promotion; evictions are only logged).
_EVENT_KINDS = {
    ACTIVATED: ModelEvent.PROMOTED,
    STAGED: ModelEvent.STAGED,
    ADDED: ModelEvent.ROLE_SET,
    ROLE_SET: ModelEvent.ROLE_SET,
    PROMOTED: ModelEvent.PROMOTED,
    ROLLED_BACK: ModelEvent.ROLLED_BACK,
    PINNED: ModelEvent.PINNED,
    UNPINNED: ModelEvent.UNPINNED,
    RETIRED: ModelEvent.RETIRED,
    WEIGHT_SET: ModelEvent.WEIGHT_SET,
}


@dataclass
class Change:
    """What one model or control message does to a data type's lineup.

    Attributes:
        lineup: the lineup after it (unchanged when rejected).
        events: to the model-events output, in order.
        dead_letter: for a rejected model or control message, with its bytes.
        serve: the version that must serve from now on (the champion changed), else None.
        schedule: the accepted model is the new champion: serve it as a published model
            (from its ``created_at`` in event time, at once in arrival selection).
        keep: the versions whose artifacts to keep (all the lineup remembers).
    """

    lineup: Lineup
    events: list[ModelEvent] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    serve: str | None = None
    schedule: bool = False
    keep: set[str] = field(default_factory=set)


def lineup_of(raw: bytes | None, data_type: str, champion: Model | None = None, keep: int = DEFAULT_KEEP) -> Lineup:
    """The lineup kept in state, or a new one remembering ``keep`` versions.

    A champion served before lineups existed (state of an older release) is adopted as the champion.
    """
    if raw:
        return Lineup.from_bytes(bytes(raw))
    lineup = Lineup(data_type, keep=keep)
    if champion is not None:
        lineup = lineup.accepted(VersionEntry.of_model(champion), CHAMPION, now=0).lineup
    return lineup


def requested_role(model: Model) -> tuple[str, int]:
    """The role (and a canary's weight in basis points) the model's descriptor asks for; champion by default."""
    metadata = model.descriptor.metadata
    role = metadata.get(ROLE_KEY, CHAMPION) or CHAMPION
    try:
        weight = int(metadata.get(WEIGHT_KEY, "0") or 0)
    except ValueError:
        weight = -1  # the lineup rejects it with its reason
    return role, weight


def on_accepted(
    lineup: Lineup, model: Model, payload: bytes, now: int, max_payload_bytes: int, event_time: bool = False
) -> Change:
    """A model the admission accepted joins the lineup in the role it asks for (see the module docstring).

    ``event_time``: a champion older than the current one (by ``created_at``)
    is history that still serves its own time range (the event-time rule),
    not a downgrade: it is remembered and scheduled as before.
    """
    role, weight = requested_role(model)
    champion = lineup.champion
    if event_time and role == CHAMPION and champion is not None and model.descriptor.created_at < champion.created_at:
        outcome = lineup.remembered(VersionEntry.of_model(model), now)
        return Change(outcome.lineup, schedule=True, keep=_remembered(outcome.lineup))
    outcome = lineup.accepted(VersionEntry.of_model(model), role, weight, now)
    if outcome.rejected:
        event = _event(ModelEvent.REJECTED, lineup.data_type, model.version, now, model=model)
        event.reason = f"{outcome.reason}: {_detail(outcome)}"
        # The champion that keeps serving, as on any REJECTED event (the admission's own is replaced by this one).
        event.previous_version = lineup.champion.version if lineup.champion is not None else ""
        letter = dead_letter(
            "model",
            outcome.reason,
            event.reason,
            payload,
            data_type=lineup.data_type,
            record_id=f"{model.name}:{model.version}",
            max_payload_bytes=max_payload_bytes,
        )
        return Change(lineup, [event], letter, keep=_remembered(lineup))
    new = outcome.lineup
    activated = any(item.kind == ACTIVATED and item.version == model.version for item in outcome.items)
    events = [e for e in _events(outcome, now, skip={(ACTIVATED, model.version)}) if e is not None]
    return Change(new, events, schedule=activated, keep=_remembered(new))


def on_control(lineup: Lineup, payload: bytes, now: int, max_payload_bytes: int) -> Change:
    """Apply one ``ModelControl`` message's bytes to the lineup (see the module docstring)."""
    try:
        control = parse_control(payload)
    except ServingError as exc:
        return _control_rejected(lineup, exc.reason, str(exc), "", payload, now, max_payload_bytes)
    outcome = lineup.apply(control, now)
    if outcome.rejected:
        return _control_rejected(
            lineup, outcome.reason, _detail(outcome), control.target_version, payload, now, max_payload_bytes
        )
    new = outcome.lineup
    before, after = lineup.champion, new.champion
    serve = after.version if after is not None and (before is None or before.version != after.version) else None
    events = [e for e in _events(outcome, now) if e is not None]
    for event in events:
        event.reason = control.reason or event.reason
    return Change(new, events, serve=serve, keep=_remembered(new))


def _control_rejected(
    lineup: Lineup, reason: str, detail: str, version: str, payload: bytes, now: int, max_payload_bytes: int
) -> Change:
    event = _event(ModelEvent.CONTROL_REJECTED, lineup.data_type, version, now)
    event.reason = f"{reason}: {detail}"
    letter = dead_letter(
        "control",
        reason,
        event.reason,
        payload,
        data_type=lineup.data_type,
        record_id=version,
        max_payload_bytes=max_payload_bytes,
    )
    return Change(lineup, [event], letter, keep=_remembered(lineup))


def _events(outcome: Outcome, now: int, skip: set[tuple[str, str]] = frozenset()) -> Iterable[ModelEvent | None]:
    lineup = outcome.lineup
    for item in outcome.items:
        if (item.kind, item.version) in skip or item.kind in (EVICTED, REJECTED):
            continue
        event = _event(_EVENT_KINDS[item.kind], lineup.data_type, item.version, now)
        entry = lineup.entry(item.version) if item.version else None
        if entry is not None:
            event.name, event.role, event.sha256, event.signed_by = (
                entry.name,
                entry.role,
                entry.sha256,
                entry.signed_by,
            )
        event.reason = item.detail
        yield event


def _event(kind: int, data_type: str, version: str, now: int, model: Model | None = None) -> ModelEvent:
    event = ModelEvent(kind=kind, data_type=data_type, version=version, ts=now, subject="model")
    if model is not None:
        event.name, event.model_type = model.name, model.model_type
        event.sha256, event.signed_by = model.artifact_sha256, model.signed_by
    return event


def _detail(outcome: Outcome) -> str:
    return next((item.detail for item in outcome.items if item.kind == REJECTED), outcome.reason)


def _remembered(lineup: Lineup) -> set[str]:
    return {entry.version for entry in lineup.entries}


__all__ = ["Change", "LineupStateError", "lineup_of", "on_accepted", "on_control", "requested_role"]
