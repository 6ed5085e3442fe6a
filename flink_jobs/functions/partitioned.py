"""The partitioned job: models are broadcast to every instance; data is spread over all.

Topology::

    data ─route─► event time ─bundle─► key_by(bucket of record id) ─┐
                                                                    ├─► ModelServingPartitioned ─split─► results
    models ─route─► event time ─► broadcast(models state) ──────────┘     side: stats, dead letters, events

(route, event time, bundle and split run in the JVM: ``scripts/java``.)

Records are keyed by a hash bucket of their id only to spread them evenly and
to give each instance checkpointed buffers and event-time timers; any
instance can score any data type. Models live in broadcast state, the only
checkpointed non-keyed state PyFlink has, as ``Model.to_bytes()`` under
``data_type / created_at / name / version``; the last few versions per data
type are kept so records are scored by the model current at their time.

Model jitter: each instance receives a broadcast model on its own schedule
and builds it itself. Because records are matched to models by event time,
not by arrival, the choice of model does not jitter; what jitters is how soon
each instance can flush, so right after a swap some instances deliver
results a little later than others.
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

from flink_jobs.functions.base import ServingFunctionBase, awaiting_event
from flink_jobs.functions.batches import results_batched
from flink_jobs.functions.lineups import BroadcastSlots, LineupStore
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS
from serving.core.model import Model
from serving.formats import parse_descriptor
from serving.logs import get_logger
from serving.records import legacy_schema
from serving.records.schema import DataTypeSchema
from serving.settings import ServingOptions

log = get_logger("partitioned")

#: Broadcast state: "data_type\x1fcreated_at\x1fname\x1fversion" -> Model.to_bytes()
MODELS = MapStateDescriptor("models", Types.STRING(), BYTES)
RECORD_BUFFER = ListStateDescriptor("record-buffer", BYTES)
BUFFER_SCORED = ValueStateDescriptor("buffer-scored", Types.LONG())
MODEL_STATS = ValueStateDescriptor("model-stats", BYTES)
SCORED_TIMES = ValueStateDescriptor("scored-times", BYTES)
#: Broadcast state: data type -> DataTypeSchema bytes, for schemas published while running.
SCHEMAS = MapStateDescriptor("schemas", Types.STRING(), BYTES)
#: Broadcast state: "data_type\x1fcreated_at\x1fname\x1fversion" -> a model message awaiting its schema.
AWAITING_SCHEMA = MapStateDescriptor("awaiting-schema", Types.STRING(), BYTES)
#: Broadcast state: data type -> LineupState bytes (roles, pin, remembered versions; serving.rollout.lineup).
LINEUPS = MapStateDescriptor("lineups", Types.STRING(), BYTES)
#: Broadcast state: "data_type\x1fversion" -> Model.to_bytes() of every version a lineup remembers.
VERSIONS = MapStateDescriptor("model-versions", Types.STRING(), BYTES)
#: Every broadcast state the function uses, as the model stream must declare them.
BROADCAST_STATE = (MODELS, SCHEMAS, AWAITING_SCHEMA, LINEUPS, VERSIONS)

#: Versions kept per data type: enough for records that arrive late to find their model.
KEEP_VERSIONS = 3
SEP = "\x1f"


def state_key(model: Model) -> str:
    """Broadcast-state key of a model; sorts by publication time within a data type."""
    return SEP.join((model.data_type, f"{model.descriptor.created_at:020d}", model.name, model.version))


class ModelServingPartitioned(ServingFunctionBase, KeyedBroadcastProcessFunction):
    """Scores records with the broadcast models; the same contract as ``ModelServingKeyed``.

    Every instance admits every model; only instance 0 reports the model
    events and model dead letters, so each appears once. Late models are
    reported by every bucket that scored records the model missed.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        """Bind state, build the model cache and register the metrics."""
        self.bind(runtime_context, RECORD_BUFFER, BUFFER_SCORED, MODEL_STATS, SCORED_TIMES)
        self.reports = runtime_context.get_index_of_this_subtask() == 0
        self._built: dict[tuple[str, object], Model] = {}  # (state key, schema version) -> the model, not state
        self.lineups = LineupStore(None, self.cache, self.options)
        self._schemas_loaded = False

    def sync_schemas(self, ctx) -> None:
        """Once after ``open`` (a restore): add the published schemas in broadcast state to the registry."""
        if not self._schemas_loaded:
            for raw in ctx.get_broadcast_state(SCHEMAS).values():
                self.registry.add(DataTypeSchema.from_message(bytes(raw)))
            self._schemas_loaded = True

    def process_element(self, value, ctx):
        """A batch of records (``RecordBatch`` bytes): checked, then buffered until the watermark passes them.

        In ``arrival`` selection they are scored at once by the newest model
        of their data type. Results leave as one ``ResultBatch``.
        """
        return results_batched(self._records(value, ctx))

    def _records(self, value, ctx):
        arrived = yield from self.take_batch(value, ctx)
        if self.options.selection == "arrival":
            timelines = self._serving_timelines(ctx.get_broadcast_state(MODELS))
            tracker = self.tracker(f"bucket:{ctx.get_current_key()}")
            yield from self.arrival_flush(ctx, timelines, tracker, arrived, self._challengers(ctx))

    def _lineups(self, ctx) -> LineupStore:
        """The lineup store over this call's broadcast state (read-only on the record side)."""
        self.lineups.slots = BroadcastSlots(ctx.get_broadcast_state(LINEUPS), ctx.get_broadcast_state(VERSIONS))
        return self.lineups

    def _challengers(self, ctx) -> dict:
        store = self._lineups(ctx)
        found = {}
        for data_type in ctx.get_broadcast_state(LINEUPS).keys():  # noqa: SIM118 - state, not dict
            challengers = store.challengers(data_type, self.registry.get(data_type) or legacy_schema(data_type))
            if challengers is not None:
                found[data_type] = challengers
        return found

    def _serving_timelines(self, models) -> dict:
        """``arrival`` selection: per data type, the newest model serves every record from now on."""
        newest = {dt: self._timeline(models, dt)[-1:] for dt in self._data_types(models)}
        return {dt: [(-(2**63), timeline[0][1])] for dt, timeline in newest.items() if timeline}

    def process_broadcast_element(self, value, ctx):
        """A model (admitted on this instance, kept in broadcast state) or a data type's schema."""
        self.metrics.capture_scope()
        self.sync_schemas(ctx)
        if value.kind == "schema":
            yield from self._schema(value, ctx)
            return
        payload = bytes(value.payload)
        if value.kind == "control":
            yield from self._control(payload, ctx, value.data_type)
            return
        waits = awaiting_event(payload, self.registry)
        if waits is not None:
            ctx.get_broadcast_state(AWAITING_SCHEMA).put(SEP.join((waits.data_type, str(value.created_at),
                                                                   waits.name, waits.version)), payload)  # fmt: skip
            if self.reports:
                yield MODEL_EVENTS, waits.SerializeToString()
            return
        yield from self._admit(payload, ctx, value.data_type)

    def _schema(self, value, ctx):
        data_type = value.data_type
        timeline = self._timeline(ctx.get_broadcast_state(MODELS), data_type)
        current = self.registry.get(data_type)
        schema = yield from self.schema_arrived(value, current, [m for _, m in timeline], self.reports)
        if schema is None:
            return
        ctx.get_broadcast_state(SCHEMAS).put(schema.data_type, schema.to_message())
        awaiting = ctx.get_broadcast_state(AWAITING_SCHEMA)
        for key in sorted(k for k in awaiting.keys() if k.startswith(schema.data_type + SEP)):  # noqa: SIM118
            payload = bytes(awaiting.get(key))
            awaiting.remove(key)
            yield from self._admit(payload, ctx, schema.data_type)

    def _admit(self, payload: bytes, ctx, data_type: str):
        models = ctx.get_broadcast_state(MODELS)
        timeline = self._timeline(models, data_type)
        admission = self.cache.admit(
            payload,
            self.registry.get(data_type),
            known=[m for _, m in timeline],
            previous_version=timeline[-1][1].version if timeline else "",
        )
        change = None
        if admission.accepted:
            champion = timeline[-1][1] if timeline else None
            change = self._lineups(ctx).accepted(data_type, admission, payload, champion)
        if self.reports:
            yield MODEL_EVENTS, admission.event.SerializeToString()
            if admission.dead_letter is not None:
                self.metrics.dead_lettered()
                yield DEAD_LETTERS, admission.dead_letter.SerializeToString()
        if change is None:
            return
        yield from self.lineups.emit(change, self.metrics, report=self.reports)
        if not change.schedule:
            return
        model = admission.model
        models.put(state_key(model), model.to_bytes())
        keys = sorted(k for k in models.keys() if k.startswith(model.data_type + SEP))  # noqa: SIM118 - state, not dict
        for old in keys[:-KEEP_VERSIONS]:
            models.remove(old)
        self._built.clear()  # the cache may close models it no longer keeps
        serving = [m for dt in self._data_types(models) for _, m in self._timeline(models, dt)]
        self.cache.retain([*serving, *self.lineups.in_use()])
        if self.reports:
            log.info(
                "model accepted", extra={"data_type": model.data_type, "model": model.name, "version": model.version}
            )

    def _control(self, payload: bytes, ctx, data_type: str):
        """A ``ModelControl``: applied to the lineup; a new champion serves every record flushed from now on."""
        models = ctx.get_broadcast_state(MODELS)
        timeline = self._timeline(models, data_type)
        store = self._lineups(ctx)
        change = store.control(data_type, payload, timeline[-1][1] if timeline else None)
        yield from store.emit(change, self.metrics, report=self.reports)
        if change.serve is None:
            return
        raw = store.slots.artifact(data_type, change.serve)
        if raw is None:
            log.error("promoted version has no artifact", extra={"data_type": data_type, "version": change.serve})
            return
        for key in [k for k in models.keys() if k.startswith(data_type + SEP)]:  # noqa: SIM118 - state, not dict
            models.remove(key)
        # Time 0 in the key: the promoted version is the type's only model, for every record from now on.
        descriptor = parse_descriptor(raw)
        models.put(SEP.join((data_type, f"{0:020d}", descriptor.name, descriptor.version)), raw)
        self._built.clear()
        if self.reports:
            log.info("model swapped in", extra={"data_type": data_type, "version": change.serve})

    def on_timer(self, timestamp: int, ctx):
        """Score due records with the model current at each record's time (``arrival``: the newest)."""
        return results_batched(self._timer(timestamp, ctx))

    def _timer(self, timestamp: int, ctx):
        self.sync_schemas(ctx)
        bounds = self.timers.fired(ctx, timestamp)
        tracker = self.tracker(f"bucket:{ctx.get_current_key()}")
        challengers = self._challengers(ctx) if bounds is not None else {}
        if bounds is not None and self.options.selection == "arrival":
            timelines = self._serving_timelines(ctx.get_broadcast_state(MODELS))
            yield from self.flush(ctx, bounds, timelines, {}, tracker, challengers)
        elif bounds is not None:
            models = ctx.get_broadcast_state(MODELS)
            timelines = {
                dt: [(t, m) for t, m in self._timeline(models, dt) if t <= bounds.models_up_to]
                for dt in self._data_types(models)
            }
            yield from self.flush(ctx, bounds, timelines, timelines, tracker, challengers)
        yield from self.finish_timer(ctx, tracker, bounds)

    def _timeline(self, models, data_type: str) -> list[tuple[int, Model]]:
        """The data type's models in broadcast state, oldest first, each built once per schema version.

        Timers ask for it per key and slot: the state keys name the model,
        so the model bytes are read and parsed only for a key not seen yet.
        """
        schema = self.registry.get(data_type) or legacy_schema(data_type)
        keys = sorted(k for k in models.keys() if k.startswith(data_type + SEP))  # noqa: SIM118 - state, not dict
        timeline = []
        for key in keys:
            model = self._built.get((key, schema.version))
            if model is None:
                model = self.cache.restored(bytes(models.get(key)), schema)
                self._built[(key, schema.version)] = model
            # The time in the key, not the descriptor's: a version promoted by control serves from 0.
            timeline.append((int(key.split(SEP)[1]), model))
        return timeline

    @staticmethod
    def _data_types(models) -> set[str]:
        return {k.split(SEP, 1)[0] for k in models.keys()}  # noqa: SIM118 - state, not dict
