"""The answers of the stats service's model, as JSON-ready pydantic models.

:class:`serving.observability.monitor.Monitor` builds them; the HTTP API
returns them as they are, so their field names are the API's.
Every time is Unix epoch milliseconds.
"""

from __future__ import annotations

from pydantic import BaseModel


class MemberView(BaseModel):
    """One member of an ensemble: records it decided, answered in time, missed (late) or failed, all instances."""

    name: str
    version: str
    wins: int
    ok: int
    late: int
    errors: int


class ModelView(BaseModel):
    """One model version, as ``GET /models`` lists it."""

    data_type: str
    name: str
    version: str
    model_type: str
    description: str
    #: One of :data:`serving.observability.monitor.STATUSES`.
    status: str
    #: When it started serving (its ``created_at``); None until stats show it started.
    since: int | None
    #: When a newer model of its data type started; None while serving.
    retired_at: int | None
    #: When the job accepted it (model event time).
    accepted_at: int | None
    #: When the job rejected it (model event time).
    rejected_at: int | None
    #: Why it was rejected; empty otherwise.
    reason: str
    #: Records scored, over every instance (and every run of an instance: it never goes down).
    usage: int
    #: Scoring time of those records, ns (never goes down either).
    total_duration_ns: int = 0
    #: An ensemble's members, in priority order, with their counters (never go down); empty for other models.
    members: list[MemberView] = []


class ModelStateView(BaseModel):
    """The serving model of a data type and its merged stats."""

    name: str
    version: str
    model_type: str
    description: str
    status: str
    since: int | None
    usage: int
    total_duration_ns: int
    mean_duration_ns: float
    min_duration_ns: int
    max_duration_ns: int
    #: Records/s: each instance's over its last 10 s of snapshots or its last two, whichever is longer
    #: (by the snapshots' ``emitted_at``; with one snapshot, since the model started), summed.
    records_per_second: float
    #: The window ``records_per_second`` is over, ms (the longest of the instances'); 0 when unmeasured.
    rate_window_ms: int = 0
    #: usage / (last snapshot - since): the average since the model started.
    mean_records_per_second: float
    #: Instances (keys or buckets) that reported stats for it.
    instances: int
    #: Counter resets seen (an instance restarted without its state); counts carry over them.
    restarts: int = 0
    #: The newest ``emitted_at`` of its stats.
    updated_at: int | None
    #: An ensemble's members, in priority order, with their merged counters; empty for other models.
    members: list[MemberView] = []


class StateView(BaseModel):
    """``GET /state/{data_type}``: the current model (None before any started) and how many are known."""

    data_type: str
    model: ModelStateView | None
    models_known: int


class HistoryEntry(BaseModel):
    """One model version in a data type's history, in deployment order."""

    name: str
    version: str
    model_type: str
    status: str
    deployed_at: int | None
    retired_at: int | None
    accepted_at: int | None
    rejected_at: int | None
    reason: str
    usage: int
    duplicates: int


class SeriesPoint(BaseModel):
    """Throughput and latency of a data type over the interval ending at ``t`` (all its models)."""

    t: int
    usage: int
    #: Records/s over the 10 s before ``t`` (back to the newest point at least that old, else the first); None first.
    records_per_second: float | None
    #: Mean scoring time per record over the same window; None without new records.
    mean_duration_ns: float | None


class Counters(BaseModel):
    """What the monitor has read."""

    stats_messages: int
    event_messages: int
    malformed_stats: int
    malformed_events: int
    #: Snapshots older than one already seen for their instance (ignored).
    stale_stats: int
    #: Snapshots with a later time and a lower count than their instance's previous one (a restart).
    counter_resets: int = 0
    #: Deleted keys (null values) on a compacted topic (ignored).
    tombstones: int
    #: REJECTED events of model messages that could not be decoded at all (no name).
    rejected_unidentified: int
    duplicates: int
