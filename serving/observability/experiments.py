"""Experiments as the stats service shows them: each champion-versus-challenger pair, and each data type's lineup.

Flink-free and Kafka-free, like :mod:`serving.observability.monitor`, whose
:class:`~serving.observability.monitor.Monitor` routes here what is not a
serving model's:

* a stats message whose ``pair`` is set (``serving.rollout.experiments.stats_message``)
  is an experiment's ``PairStats`` snapshot, cumulative for its pair since
  ``since``. Per (pair, instance) the newest snapshot (by ``emitted_at``, then
  ``n``) replaces the older ones; see :func:`merge` for how instances combine;
* lineup events (``ACCEPTED`` of a model, the :data:`~serving.observability.messages.LINEUP_KINDS`)
  tell each version's role, whether the data type is pinned, and which
  pairs were recommended for promotion (``PROMOTE_RECOMMENDED``: its version
  is the challenger, its ``previous_version`` the champion).

A pair is (data type, champion version, challenger version): the challenger's
role is the newest snapshot's, not part of the key, because the jobs keep one
aggregate per pair across a role change (a shadow made canary carries its
counts; ``serving.rollout.pair_stats``). Nothing here is thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from serving.observability.messages import LINEUP_KINDS
from serving.pb.comparison_pb2 import PairStats
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.rollout.audit import _spans  # the audit's reading of roles from events, so both agree
from serving.rollout.promotion import wilson_lower

#: Instances named so are subtasks of the jobs' ``ComparePairs`` (flink_jobs/functions/pairs.py): keyed by data
#: type, one of them holds the whole aggregate of a pair, and a restore at another parallelism may move it to
#: another subtask with its counts. Their snapshots are one instance's, not parts to add up.
WHOLE_PAIR_PREFIX = "compare-"
#: Lineup events kept per data type (the oldest are dropped first); model events are few.
EVENTS_KEPT = 10_000
#: Lineup events listed per data type in an answer (the newest).
EVENTS_SHOWN = 50
#: The confidence of the Wilson lower bound shown (as ``PairStats.wilson_lower`` documents it).
CONFIDENCE = 0.95

_LEFT = {ModelEvent.STAGED: "staged", ModelEvent.RETIRED: "retired"}
_TAKES = frozenset({ModelEvent.ACCEPTED, ModelEvent.PROMOTED, ModelEvent.ROLLED_BACK, ModelEvent.ROLE_SET})

Pair = tuple[str, str, str]


class ExperimentView(BaseModel):
    """One champion-versus-challenger pair of versions, merged over the instances that report it."""

    data_type: str
    champion_version: str
    challenger_version: str
    #: The challenger's role in the newest snapshot: "shadow" or "canary".
    role: str
    #: Records compared, and those on which both agreed.
    n: int
    agreements: int
    #: agreements / n (0 when n is 0).
    agreement_rate: float
    #: Wilson score lower bound of the agreement rate, 95 % confidence (0 when n is 0).
    wilson_lower: float
    #: Mean |delta| over the records both scored (instances weighted by n minus either side's errors).
    mean_abs_delta: float
    #: p95 |delta| and p99 scoring times (ms): the highest of the instances' (an upper bound of the merged one).
    p95_abs_delta: float
    champion_errors: int
    challenger_errors: int
    champion_p99_ms: float
    challenger_p99_ms: float
    #: Event time of the first record compared; the newest snapshot's ``emitted_at``.
    since: int
    updated_at: int
    #: Instances whose counts are in the figures.
    instances: int
    #: A ``PROMOTE_RECOMMENDED`` event was seen for this pair: when, and why.
    recommended: bool
    recommended_at: int | None = None
    recommendation: str = ""


class LineupVersion(BaseModel):
    """One version of a data type as its lineup events tell it."""

    version: str
    name: str
    #: "champion", "shadow", "canary" or "decoy" while it holds that role; else "staged", "retired" or "".
    role: str
    #: When it took the role it holds (or its last event, when it holds none).
    since: int
    #: Its newest event: kind, time and reason.
    last_event: str
    last_event_at: int
    reason: str
    sha256: str
    signed_by: str


class LineupEvent(BaseModel):
    """One lineup or experiment event."""

    kind: str
    version: str
    previous_version: str
    role: str
    ts: int
    reason: str


class DataTypeExperiments(BaseModel):
    """``GET /experiments/{data_type}``: its pairs, the lineup, whether pinned, and its newest lineup events."""

    data_type: str
    pinned: bool
    experiments: list[ExperimentView]
    lineup: list[LineupVersion]
    #: The newest :data:`EVENTS_SHOWN` lineup events, oldest first.
    events: list[LineupEvent]


def merge(snapshots: dict[str, PairStats]) -> PairStats:
    """One pair's figures from the newest snapshot of each instance (``instance -> PairStats``, at least one).

    Snapshots of instances named :data:`WHOLE_PAIR_PREFIX` ``<n>`` count as one
    instance (the newest of them): the aggregate moves between them. The others
    each counted a share of the records: n, agreements and errors are summed;
    p95 |delta| and the p99 times are the highest of the instances' (the merged
    quantile is no higher, within the sketches' error); the mean |delta| is
    weighted by each share's n minus its errors (exact unless both sides failed
    on a record); ``since`` is the earliest, ``emitted_at`` the newest, the role the newest snapshot's.
    """
    newest = lambda s: (s.emitted_at, s.n)  # noqa: E731
    parts = [s for i, s in snapshots.items() if not i.startswith(WHOLE_PAIR_PREFIX)]
    whole = [s for i, s in snapshots.items() if i.startswith(WHOLE_PAIR_PREFIX)]
    if whole:
        parts.append(max(whole, key=newest))
    if len(parts) == 1:
        return parts[0]
    last = max(parts, key=newest)
    out = PairStats(
        data_type=last.data_type,
        champion_version=last.champion_version,
        challenger_version=last.challenger_version,
        challenger_role=last.challenger_role,
        emitted_at=last.emitted_at,
        since=min((s.since for s in parts if s.since), default=0),
    )
    for s in parts:
        out.n += s.n
        out.agreements += s.agreements
        out.champion_errors += s.champion_errors
        out.challenger_errors += s.challenger_errors
    out.p95_abs_delta = max(s.p95_abs_delta for s in parts)
    out.champion_p99_ms = max(s.champion_p99_ms for s in parts)
    out.challenger_p99_ms = max(s.challenger_p99_ms for s in parts)
    weights = [max(s.n - s.champion_errors - s.challenger_errors, 0) for s in parts]
    if not sum(weights):
        weights = [s.n for s in parts]
    total = sum(weights)
    out.mean_abs_delta = sum(w * s.mean_abs_delta for w, s in zip(weights, parts)) / total if total else 0.0
    return out


class Experiments:
    """The experiments and lineups of every data type, folded from stats snapshots and model events."""

    def __init__(self, events_kept: int = EVENTS_KEPT) -> None:
        self._pairs: dict[Pair, dict[str, PairStats]] = {}
        self._events: dict[str, list[ModelEvent]] = {}
        self._recommended: dict[Pair, ModelEvent] = {}
        self._events_kept = events_kept
        #: Snapshots older than one already held for their pair and instance (ignored).
        self.stale = 0

    def add_stats(self, message: ModelStats) -> bool:
        """Hold an experiment's snapshot (a validated stats message with ``pair`` set); False when stale."""
        pair = message.pair
        key = (pair.data_type, pair.champion_version, pair.challenger_version)
        held = self._pairs.setdefault(key, {})
        instance = message.instance or pair.instance
        current = held.get(instance)
        if current is not None and (current.emitted_at, current.n) > (pair.emitted_at, pair.n):
            self.stale += 1
            return False
        snapshot = PairStats()
        snapshot.CopyFrom(pair)
        held[instance] = snapshot
        return True

    def add_event(self, event: ModelEvent) -> bool:
        """Keep a validated model event that is about a lineup or an experiment; False for the others."""
        if event.subject == "schema" or not (event.kind in LINEUP_KINDS or event.kind == ModelEvent.ACCEPTED):
            return False
        if event.kind == ModelEvent.PROMOTE_RECOMMENDED:
            key = (event.data_type, event.previous_version, event.version)
            if key not in self._recommended or event.ts < self._recommended[key].ts:
                self._recommended[key] = event
        kept = self._events.setdefault(event.data_type, [])
        kept.append(event)
        if len(kept) > self._events_kept:
            del kept[: len(kept) - self._events_kept]
        return True

    def data_types(self) -> list[str]:
        """Every data type with an experiment or a lineup event, sorted."""
        return sorted({k[0] for k in self._pairs} | set(self._events))

    def view(self, data_type: str) -> DataTypeExperiments:
        """The experiments, lineup and lineup events of ``data_type`` (empty lists when it has none)."""
        events = sorted(self._events.get(data_type, []), key=lambda e: e.ts)  # stable: equal ts keep arrival order
        pinned = False
        for event in events:
            if event.kind in (ModelEvent.PINNED, ModelEvent.UNPINNED):
                pinned = event.kind == ModelEvent.PINNED
        pairs = sorted(k for k in self._pairs if k[0] == data_type)
        return DataTypeExperiments(
            data_type=data_type,
            pinned=pinned,
            experiments=[self._experiment(k) for k in pairs],
            lineup=_lineup(events),
            events=[_event_view(e) for e in events[-EVENTS_SHOWN:]],
        )

    def views(self) -> list[DataTypeExperiments]:
        """:meth:`view` of every data type, sorted."""
        return [self.view(dt) for dt in self.data_types()]

    def _experiment(self, key: Pair) -> ExperimentView:
        snapshots = self._pairs[key]
        stats = merge(snapshots)
        recommended = self._recommended.get(key)
        whole = sum(1 for i in snapshots if i.startswith(WHOLE_PAIR_PREFIX))
        return ExperimentView(
            data_type=key[0],
            champion_version=key[1],
            challenger_version=key[2],
            role=stats.challenger_role,
            n=stats.n,
            agreements=stats.agreements,
            agreement_rate=stats.agreements / stats.n if stats.n else 0.0,
            wilson_lower=wilson_lower(stats.agreements, stats.n, CONFIDENCE),
            mean_abs_delta=stats.mean_abs_delta,
            p95_abs_delta=stats.p95_abs_delta,
            champion_errors=stats.champion_errors,
            challenger_errors=stats.challenger_errors,
            champion_p99_ms=stats.champion_p99_ms,
            challenger_p99_ms=stats.challenger_p99_ms,
            since=stats.since,
            updated_at=stats.emitted_at,
            instances=len(snapshots) - whole + (1 if whole else 0),
            recommended=recommended is not None,
            recommended_at=None if recommended is None else recommended.ts,
            recommendation="" if recommended is None else recommended.reason,
        )


def _lineup(events: list[ModelEvent]) -> list[LineupVersion]:
    """Each version's role after ``events`` (one data type's, in time order), as the audit reads them."""
    holding = {version: (role, span[0].ts) for version, role, span in _spans(events) if span[1] is None}
    latest: dict[str, ModelEvent] = {}
    left: dict[str, str] = {}
    named: dict[str, ModelEvent] = {}
    for event in events:
        if not event.version or event.kind in (ModelEvent.PROMOTE_RECOMMENDED, ModelEvent.CONTROL_REJECTED):
            continue
        latest[event.version] = event
        if event.name or event.sha256:
            named[event.version] = event
        if event.kind in _LEFT:
            left[event.version] = _LEFT[event.kind]
        elif event.kind in _TAKES:
            left.pop(event.version, None)  # it took a role since: only a later leaving event counts
    out = []
    for version, event in latest.items():
        role, since = holding.get(version, (left.get(version, ""), event.ts))
        known = named.get(version, event)
        out.append(
            LineupVersion(
                version=version,
                name=known.name,
                role=role,
                since=since,
                last_event=ModelEvent.Kind.Name(event.kind),
                last_event_at=event.ts,
                reason=event.reason,
                sha256=known.sha256,
                signed_by=known.signed_by,
            )
        )
    return sorted(out, key=lambda v: (v.since, v.version))


def _event_view(event: ModelEvent) -> LineupEvent:
    return LineupEvent(
        kind=ModelEvent.Kind.Name(event.kind),
        version=event.version,
        previous_version=event.previous_version,
        role=event.role,
        ts=event.ts,
        reason=event.reason,
    )


def flat(views: Iterable[DataTypeExperiments]) -> list[ExperimentView]:
    """Every experiment of ``views``, in order."""
    return [e for v in views for e in v.experiments]
