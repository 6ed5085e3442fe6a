"""The keyed job: a KeyedCoProcessFunction keeps the model per data type in keyed state.

Topology::

    data ─route─► event time ─bundle─► key_by(data_type) ─┐
                                                          ├─► ModelServingKeyed ─split─► results
    models ─route─► event time ─► key_by(data_type) ──────┘     side: stats, dead letters, events

(route, event time, bundle and split run in the JVM: ``scripts/java``.)

State per data type (bytes and one count, never pickled objects):

* ``current-model``: ``Model.to_bytes()`` of the serving model (descriptor + artifact);
* ``pending-models``: accepted models whose ``created_at`` the watermark has not passed;
* ``record-buffer``: records waiting for the watermark (or for a first model), as
  ``serving.core.scoring.buffer_entry`` (ts + record bytes), in arrival order;
* ``buffer-scored``: how many leading entries of ``record-buffer`` are scored already;
* ``model-stats``: ModelStatsList bytes: the stats of the serving model;
* ``scored-times``: ScoredTimes bytes: recent scored event times, to report late models;
* ``schema``: DataTypeSchema bytes: the data type's schema, when one was published
  (bundled and startup schemas need none);
* ``awaiting-schema``: model messages that came before any schema of their data type;
* ``lineup``: LineupState bytes: which version is champion, shadow, canary or decoy,
  whether the type is pinned, and the versions remembered for ROLLBACK
  (:mod:`serving.rollout.lineup`);
* ``model-versions``: version -> ``Model.to_bytes()`` of every version the lineup remembers.

Control messages (``ModelControl``, kind ``control``) arrive on the model input,
keyed by data type, and apply on arrival (:mod:`serving.rollout.keeper`).
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream.functions import KeyedCoProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

from flink_jobs.functions.base import ServingFunctionBase, awaiting_event
from flink_jobs.functions.batches import results_batched
from flink_jobs.functions.lineups import KeyedSlots, LineupStore
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS, STATS
from serving.clock import now_ms
from serving.core.model import Model
from serving.formats import parse_descriptor
from serving.logs import get_logger
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import legacy_schema
from serving.records.schema import DataTypeSchema
from serving.settings import ServingOptions

log = get_logger("keyed")

CURRENT_MODEL = ValueStateDescriptor("current-model", BYTES)
PENDING_MODELS = ListStateDescriptor("pending-models", BYTES)
RECORD_BUFFER = ListStateDescriptor("record-buffer", BYTES)
BUFFER_SCORED = ValueStateDescriptor("buffer-scored", Types.LONG())
MODEL_STATS = ValueStateDescriptor("model-stats", BYTES)
SCORED_TIMES = ValueStateDescriptor("scored-times", BYTES)
SCHEMA = ValueStateDescriptor("schema", BYTES)
AWAITING_SCHEMA = ListStateDescriptor("awaiting-schema", BYTES)
LINEUP = ValueStateDescriptor("lineup", BYTES)
MODEL_VERSIONS = MapStateDescriptor("model-versions", Types.STRING(), BYTES)


class ModelServingKeyed(ServingFunctionBase, KeyedCoProcessFunction):
    """Scores records (input 1) with the model for their data type (input 2).

    Contract:
      * A model is admitted on arrival (decoded, built, probed): the outcome is
        a model event, and a rejection also a dead letter. A rejected model
        never replaces the serving one.
      * A record is scored by the latest accepted model with
        ``created_at <= record.ts``, once the watermark has passed both by
        ``max_model_delay_ms``. A model that arrives later than that is
        reported as ``LATE_MODEL`` with the number of records it missed; one
        older than the serving model never serves.
      * Every record ends as exactly one result or one dead letter.
      * After a restore, models are rebuilt from state bytes; no model needs
        to be sent again.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        """Bind state, build the model cache and register the metrics."""
        self.bind(runtime_context, RECORD_BUFFER, BUFFER_SCORED, MODEL_STATS, SCORED_TIMES)
        self.current = runtime_context.get_state(CURRENT_MODEL)
        self.pending = runtime_context.get_list_state(PENDING_MODELS)
        self.schema = runtime_context.get_state(SCHEMA)
        self.awaiting = runtime_context.get_list_state(AWAITING_SCHEMA)
        slots = KeyedSlots(runtime_context.get_state(LINEUP), runtime_context.get_map_state(MODEL_VERSIONS))
        self.lineups = LineupStore(slots, self.cache, self.options)
        self._synced: set[str] = set()  # keys whose stored schema is in the registry

    def sync_schemas(self, ctx) -> None:
        """Add this data type's published schema (kept in state) to the registry, once per key.

        Once per key is enough: a new version reaches this instance through
        :meth:`process_element2`, which updates the registry itself. Reading
        the state per record cost a quarter of the keyed job's throughput.
        """
        key = ctx.get_current_key()
        if key in self._synced:
            return
        raw = self.schema.value()
        if raw is not None:
            self.registry.add(DataTypeSchema.from_message(bytes(raw)))
        self._synced.add(key)

    def process_element1(self, value, ctx):
        """A batch of records (``RecordBatch`` bytes): checked, then buffered until the watermark passes them.

        In ``arrival`` selection they are scored at once by the serving model.
        Results leave as one ``ResultBatch``.
        """
        return results_batched(self._records(value, ctx))

    def _records(self, value, ctx):
        arrived = yield from self.take_batch(value, ctx)
        if self.options.selection == "arrival":
            tracker = self.tracker(f"key:{ctx.get_current_key()}")
            challengers = self._challengers(ctx)
            yield from self.arrival_flush(ctx, self._serving_timeline(ctx), tracker, arrived, challengers)

    def _challengers(self, ctx) -> dict:
        data_type = ctx.get_current_key()
        found = self.lineups.challengers(data_type, self._schema_for(data_type))
        return {data_type: found} if found is not None else {}

    def _schema_for(self, data_type: str) -> DataTypeSchema:
        return self.registry.get(data_type) or legacy_schema(data_type)

    def _serving_timeline(self, ctx) -> dict:
        current = self._current_model()
        return {ctx.get_current_key(): [(-(2**63), current)]} if current is not None else {}

    def process_element2(self, value, ctx):
        """A model (admitted now; it serves from its ``created_at`` on) or a schema of this data type."""
        return results_batched(self._model_or_schema(value, ctx))

    def _model_or_schema(self, value, ctx):
        self.metrics.capture_scope()
        self.sync_schemas(ctx)
        data_type = ctx.get_current_key()
        if value.kind == "schema":
            models = [m for m in [self._current_model(), *self._pending_models()] if m is not None]
            schema = yield from self.schema_arrived(value, self.registry.get(data_type), models)
            if schema is not None:
                self.schema.update(schema.to_message())
                self._synced.add(data_type)
                waiting = [bytes(raw) for raw in self.awaiting.get() or []]
                self.awaiting.clear()
                for payload in waiting:
                    yield from self._admit(payload, ctx)
            return
        payload = bytes(value.payload)
        if value.kind == "control":
            yield from self._control(payload, ctx)
            return
        waits = awaiting_event(payload, self.registry)
        if waits is not None:
            self.awaiting.add(payload)
            _log_admission(waits, data_type)
            yield MODEL_EVENTS, waits.SerializeToString()
            return
        yield from self._admit(payload, ctx)

    def _admit(self, payload: bytes, ctx):
        data_type = ctx.get_current_key()
        current = self._current_model()
        pending = self._pending_models()
        admission = self.cache.admit(
            payload,
            self.registry.get(data_type),
            known=[m for m in [current, *pending] if m is not None],
            previous_version=current.version if current else "",
        )
        change = None
        if admission.accepted:
            # The lineup decides the role: champion (served as before), challenger, staged, or a refused downgrade.
            change = self.lineups.accepted(data_type, admission, payload, current)
        _log_admission(admission.event, data_type)
        yield MODEL_EVENTS, admission.event.SerializeToString()
        if admission.dead_letter is not None:
            self.metrics.dead_lettered()
            yield DEAD_LETTERS, admission.dead_letter.SerializeToString()
        if change is None:
            return
        yield from self.lineups.emit(change, self.metrics)
        if not change.schedule:
            return
        if self.options.selection == "arrival":
            yield from self._serve_now(admission.model, current, ctx)
            return
        self.pending.add(admission.model.to_bytes())
        self.timers.request(ctx, admission.model.descriptor.created_at)

    def _control(self, payload: bytes, ctx):
        """A ``ModelControl``: applied to the lineup now; a new champion serves from now on (pending ones drop)."""
        data_type = ctx.get_current_key()
        change = self.lineups.control(data_type, payload, self._current_model())
        yield from self.lineups.emit(change, self.metrics)
        if change.serve is None:
            return
        model = self.lineups.model(data_type, change.serve, self._schema_for(data_type))
        if model is None:
            log.error("promoted version has no artifact", extra={"data_type": data_type, "version": change.serve})
            return
        self.pending.clear()
        yield from self._swap_in(model, now_ms(), ctx)

    def _serve_now(self, model: Model, current: Model | None, ctx):
        """``arrival`` selection: an accepted model serves from now on, unless it is older than the serving one."""
        if current is not None and _created_at(model) <= _created_at(current):
            log.warning(
                "model older than the serving one: not served",
                extra={"data_type": ctx.get_current_key(), "model": model.name, "version": model.version},
            )
            return
        yield from self._swap_in(model, _created_at(model), ctx)

    def _swap_in(self, model: Model, since: int, ctx):
        """``model`` serves from now on (stats from ``since``); in ``arrival`` selection, held records are scored."""
        data_type = ctx.get_current_key()
        tracker = self.tracker(f"key:{data_type}")
        log.info("model swapped in", extra={"data_type": data_type, "model": model.name, "version": model.version})
        for message in tracker.started(model, since):
            yield STATS, message.SerializeToString()
        self.current.update(model.to_bytes())
        self.cache.retain([model, *self.lineups.in_use()])
        if self.options.selection == "arrival":
            yield from self.arrival_flush(ctx, {data_type: [(-(2**63), model)]}, tracker, (), self._challengers(ctx))
        else:
            self.stats.update(tracker.saved())

    def on_timer(self, timestamp: int, ctx):
        """Apply due models and score due records, in event-time order (``arrival``: with the serving model)."""
        return results_batched(self._timer(timestamp, ctx))

    def _timer(self, timestamp: int, ctx):
        self.sync_schemas(ctx)
        data_type = ctx.get_current_key()
        bounds = self.timers.fired(ctx, timestamp)
        tracker = self.tracker(f"key:{data_type}")
        challengers = self._challengers(ctx) if bounds is not None else {}
        if bounds is not None and self.options.selection == "arrival":
            yield from self.flush(ctx, bounds, self._serving_timeline(ctx), {}, tracker, challengers)
        elif bounds is not None:
            current = self._current_model()
            pending = sorted(self._pending_models(), key=_created_at)
            due = [m for m in pending if _created_at(m) <= bounds.models_up_to]
            # A due model older than the serving one came too late to serve at all.
            newer = [m for m in due if current is None or _created_at(m) > _created_at(current)]
            known = sorted([(_created_at(m), m) for m in [current, *due] if m is not None], key=lambda t: t[0])
            timeline = ([(-(2**63), current)] if current else []) + [(_created_at(m), m) for m in newer]
            yield from self.flush(ctx, bounds, {data_type: timeline}, {data_type: known}, tracker, challengers)
            if due:
                serving = current
                if newer:
                    # Only the newest due model serves on; earlier ones already retired while scoring.
                    serving = newer[-1]
                    for model in newer:
                        log.info(
                            "model swapped in",
                            extra={"data_type": data_type, "model": model.name, "version": model.version},
                        )
                    for message in tracker.started(serving, _created_at(serving)):
                        yield STATS, message.SerializeToString()
                    self.current.update(serving.to_bytes())
                waiting = [m for m in pending if m not in due]
                self.pending.update([m.to_bytes() for m in waiting])
                self.cache.retain([m for m in [serving, *waiting, *self.lineups.in_use()] if m is not None])
        yield from self.finish_timer(ctx, tracker, bounds)

    def _current_model(self) -> Model | None:
        raw = self.current.value()
        return self.cache.restored(bytes(raw), self._schema_of(raw)) if raw is not None else None

    def _pending_models(self) -> list[Model]:
        return [self.cache.restored(bytes(raw), self._schema_of(raw)) for raw in self.pending.get() or []]

    def _schema_of(self, model_bytes: bytes) -> DataTypeSchema:
        """The schema a model kept in state is bound to: its data type's now (a model of old state: the bundled)."""
        data_type = parse_descriptor(bytes(model_bytes)).data_type
        return self.registry.get(data_type) or legacy_schema(data_type)


def _created_at(model: Model) -> int:
    return model.descriptor.created_at


def _log_admission(event: ModelEvent, key: str) -> None:
    log.info(
        f"model {ModelEvent.Kind.Name(event.kind).lower()}",
        extra={"data_type": key, "model": event.name, "version": event.version, "reason": event.reason or "-"},
    )
