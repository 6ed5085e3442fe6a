r"""Lineups in Flink state: each data type's roles and the artifacts of the versions it remembers.

The keyed job keeps them in keyed state (the key is the data type), the
partitioned job in broadcast state (keyed by data type, and by
``data type \x1f version`` for artifacts); :class:`KeyedSlots` and
:class:`BroadcastSlots` hide the difference. What a model or control message
does to a lineup is decided without Flink, in :mod:`serving.rollout.keeper`.
"""

from __future__ import annotations

from collections.abc import Iterator

from flink_jobs.functions.metrics import ServingMetrics
from flink_jobs.tags import DEAD_LETTERS, MODEL_EVENTS
from serving.clock import now_ms
from serving.core.admission import Admission, ModelCache
from serving.core.model import Model
from serving.logs import get_logger
from serving.pb.model_event_pb2 import ModelEvent
from serving.records.schema import DataTypeSchema
from serving.rollout.keeper import Change, lineup_of, on_accepted, on_control, requested_role
from serving.rollout.lineup import Lineup
from serving.rollout.rendezvous import Challengers
from serving.settings import ServingOptions

log = get_logger("lineups")

SEP = "\x1f"


class KeyedSlots:
    """Keyed state: the lineup in a ValueState, artifacts in a MapState by version (the current key is the type)."""

    def __init__(self, lineup_state, versions_state) -> None:
        self.lineup_state, self.versions_state = lineup_state, versions_state

    def lineup(self, data_type: str) -> bytes | None:
        """The lineup's bytes, or None."""
        raw = self.lineup_state.value()
        return bytes(raw) if raw is not None else None

    def put_lineup(self, data_type: str, raw: bytes) -> None:
        """Keep the lineup's bytes."""
        self.lineup_state.update(raw)

    def artifact(self, data_type: str, version: str) -> bytes | None:
        """``Model.to_bytes()`` of a remembered version, or None."""
        raw = self.versions_state.get(version)
        return bytes(raw) if raw is not None else None

    def put_artifact(self, data_type: str, version: str, raw: bytes) -> None:
        """Keep a version's artifact."""
        self.versions_state.put(version, raw)

    def forget_except(self, data_type: str, keep: set[str]) -> None:
        """Drop the artifacts of versions not in ``keep``."""
        for version in [v for v in self.versions_state.keys() if v not in keep]:  # noqa: SIM118
            self.versions_state.remove(version)


class BroadcastSlots:
    """Broadcast state: lineups by data type, artifacts by data type and version (read-only off the model side)."""

    def __init__(self, lineups, artifacts) -> None:
        self.lineups, self.artifacts = lineups, artifacts

    def lineup(self, data_type: str) -> bytes | None:
        """The lineup's bytes, or None."""
        raw = self.lineups.get(data_type)
        return bytes(raw) if raw is not None else None

    def put_lineup(self, data_type: str, raw: bytes) -> None:
        """Keep the lineup's bytes."""
        self.lineups.put(data_type, raw)

    def artifact(self, data_type: str, version: str) -> bytes | None:
        """``Model.to_bytes()`` of a remembered version, or None."""
        raw = self.artifacts.get(f"{data_type}{SEP}{version}")
        return bytes(raw) if raw is not None else None

    def put_artifact(self, data_type: str, version: str, raw: bytes) -> None:
        """Keep a version's artifact."""
        self.artifacts.put(f"{data_type}{SEP}{version}", raw)

    def forget_except(self, data_type: str, keep: set[str]) -> None:
        """Drop the artifacts of this data type's versions not in ``keep``."""
        prefix = f"{data_type}{SEP}"
        for key in [k for k in self.artifacts.keys() if k.startswith(prefix) and k[len(prefix) :] not in keep]:  # noqa: SIM118
            self.artifacts.remove(key)


class LineupStore:
    """Lineups and artifacts in state, applied and read by a serving function.

    ``report`` False (the partitioned job's instances but one) keeps the
    state up to date without emitting the events, so each appears once.
    """

    def __init__(self, slots, cache: ModelCache, options: ServingOptions) -> None:
        self.slots, self.cache, self.options = slots, cache, options
        self._decoded: dict[str, tuple[bytes, Lineup]] = {}  # data type -> (bytes, lineup): decode once per change
        # data type -> ((lineup bytes, schema version), its challengers built): build once per change
        self._challengers: dict[str, tuple[tuple[bytes, object], Challengers | None]] = {}

    def lineup(self, data_type: str, champion: Model | None = None) -> Lineup:
        """The data type's lineup (a champion served before lineups existed is adopted)."""
        raw = self.slots.lineup(data_type)
        cached = self._decoded.get(data_type)
        if raw is not None and cached is not None and cached[0] == raw:
            return cached[1]
        lineup = lineup_of(raw, data_type, champion, keep=self.options.keep_versions)
        if raw is not None:
            self._decoded[data_type] = (raw, lineup)
        return lineup

    def accepted(self, data_type: str, admission: Admission, payload: bytes, champion: Model | None) -> Change:
        """An accepted model joins the lineup; a refused one turns ``admission`` into a rejection (event, letter)."""
        model = admission.model
        assert model is not None
        change = on_accepted(
            self.lineup(data_type, champion),
            model,
            payload,
            now_ms(),
            self.options.dead_letter_max_payload_bytes,
            event_time=self.options.selection == "event-time",
        )
        event = admission.event
        event.role, _ = requested_role(model)
        event.sha256, event.signed_by = model.artifact_sha256, model.signed_by
        if change.dead_letter is not None:  # refused by the lineup: reported as the admission's own outcome
            self.cache.forget(model)
            event.CopyFrom(change.events[0])
            admission.dead_letter, change.events, change.dead_letter = change.dead_letter, [], None
            return change
        self.slots.put_artifact(data_type, model.version, model.to_bytes())
        self._keep(data_type, change, champion)
        return change

    def control(self, data_type: str, payload: bytes, champion: Model | None) -> Change:
        """Apply a ``ModelControl`` message's bytes to the data type's lineup."""
        change = on_control(
            self.lineup(data_type, champion), payload, now_ms(), self.options.dead_letter_max_payload_bytes
        )
        if change.dead_letter is None:
            self._keep(data_type, change, champion)
        return change

    def emit(self, change: Change, metrics: ServingMetrics, report: bool = True) -> Iterator[tuple]:
        """The change's events and dead letter, as side outputs (nothing when not ``report``); logs each."""
        for event in change.events:
            log.info(
                f"model {ModelEvent.Kind.Name(event.kind).lower()}",
                extra={"data_type": event.data_type, "version": event.version or "-", "reason": event.reason or "-"},
            )
            if report:
                yield MODEL_EVENTS, event.SerializeToString()
        if change.dead_letter is not None and report:
            metrics.dead_lettered()
            yield DEAD_LETTERS, change.dead_letter.SerializeToString()

    def model(self, data_type: str, version: str, schema: DataTypeSchema) -> Model | None:
        """A remembered version, built (once per worker and schema version), or None if its artifact is gone."""
        raw = self.slots.artifact(data_type, version)
        return self.cache.restored(raw, schema) if raw is not None else None

    def challengers(self, data_type: str, schema: DataTypeSchema) -> Challengers | None:
        """The data type's shadows, canary and decoy, built; None when it has none (the usual case).

        Built once per lineup and schema version: a flush reads only the
        lineup's bytes, not the artifacts.
        """
        raw = self.slots.lineup(data_type)
        if raw is None:
            return None
        key = (raw, schema.version)
        cached = self._challengers.get(data_type)
        if cached is not None and cached[0] == key:
            return cached[1]
        lineup = self.lineup(data_type)
        canary = lineup.canary
        found = None
        if lineup.shadows or canary or lineup.decoy:
            shadows = tuple(m for m in (self.model(data_type, e.version, schema) for e in lineup.shadows) if m)
            found = Challengers(
                shadows=shadows,
                canary=self.model(data_type, canary.version, schema) if canary else None,
                canary_weight_bp=canary.weight_bp if canary else 0,
                decoy=lineup.decoy is not None,
                tolerance=self.options.comparison_tolerance,
            )
        self._challengers[data_type] = (key, found)
        return found

    def in_use(self) -> list[Model]:
        """The challenger models built for flushes: a serving function's cache must keep them."""
        found = []
        for _, challengers in self._challengers.values():
            if challengers is not None:
                found += [m for m in (*challengers.shadows, challengers.canary) if m is not None]
        return found

    def _keep(self, data_type: str, change: Change, champion: Model | None = None) -> None:
        if champion is not None and self.slots.lineup(data_type) is None:
            # The lineup adopted a champion of older state: keep its artifact too, so ROLLBACK can go back to it.
            self.slots.put_artifact(data_type, champion.version, champion.to_bytes())
        raw = change.lineup.to_bytes()
        self.slots.put_lineup(data_type, raw)
        self._decoded[data_type] = (raw, change.lineup)
        self.slots.forget_except(data_type, change.keep)
