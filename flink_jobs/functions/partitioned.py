"""The partitioned job: models are broadcast to every instance; data is spread over all.

Topology::

    data ──route (JVM)──► event time (JVM) ──key_by(bucket of record id)──┐
                                                                          ├─► ModelServingPartitioned ─► results
    models ─decode─► event time ──broadcast(models state)─────────────────┘      side: stats, dead letters, events

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

from flink_jobs.functions.base import ServingFunctionBase
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS
from serving.core.model import Model
from serving.logs import get_logger
from serving.settings import ServingOptions

log = get_logger("partitioned")

#: Broadcast state: "data_type\x1fcreated_at\x1fname\x1fversion" -> Model.to_bytes()
MODELS = MapStateDescriptor("models", Types.STRING(), BYTES)
RECORD_BUFFER = ListStateDescriptor("record-buffer", BYTES)
BUFFER_SCORED = ValueStateDescriptor("buffer-scored", Types.LONG())
MODEL_STATS = ValueStateDescriptor("model-stats", BYTES)
SCORED_TIMES = ValueStateDescriptor("scored-times", BYTES)

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

    def process_element(self, value, ctx):
        """A data record: validate it, then buffer it until the watermark passes it."""
        yield from self.take_record(value, ctx)

    def process_broadcast_element(self, value, ctx):
        """A model: admit it on this instance and keep it in broadcast state."""
        self.metrics.capture_scope()
        models = ctx.get_broadcast_state(MODELS)
        timeline = self._timeline(models, value.data_type)
        admission = self.cache.admit(
            bytes(value.payload),
            known=[m for _, m in timeline],
            previous_version=timeline[-1][1].version if timeline else "",
        )
        if self.reports:
            yield MODEL_EVENTS, admission.event.SerializeToString()
            if admission.dead_letter is not None:
                self.metrics.dead_lettered()
                yield DEAD_LETTERS, admission.dead_letter.SerializeToString()
        if not admission.accepted:
            return
        model = admission.model
        models.put(state_key(model), model.to_bytes())
        keys = sorted(k for k in models.keys() if k.startswith(model.data_type + SEP))  # noqa: SIM118 - state, not dict
        for old in keys[:-KEEP_VERSIONS]:
            models.remove(old)
        self.cache.retain(m for dt in self._data_types(models) for _, m in self._timeline(models, dt))
        if self.reports:
            log.info(
                "model accepted", extra={"data_type": model.data_type, "model": model.name, "version": model.version}
            )

    def on_timer(self, timestamp: int, ctx):
        """Score due records with the model current at each record's time."""
        bounds = self.timers.fired(ctx, timestamp)
        tracker = self.tracker(f"bucket:{ctx.get_current_key()}")
        if bounds is not None:
            models = ctx.get_broadcast_state(MODELS)
            timelines = {
                dt: [(t, m) for t, m in self._timeline(models, dt) if t <= bounds.models_up_to]
                for dt in self._data_types(models)
            }
            yield from self.flush(ctx, bounds, timelines, timelines, tracker)
        yield from self.finish_timer(ctx, tracker, bounds)

    def _timeline(self, models, data_type: str) -> list[tuple[int, Model]]:
        entries = sorted((k, v) for k, v in models.items() if k.startswith(data_type + SEP))
        built = [self.cache.restored(bytes(v)) for _, v in entries]
        return [(m.descriptor.created_at, m) for m in built]

    @staticmethod
    def _data_types(models) -> set[str]:
        return {k.split(SEP, 1)[0] for k in models.keys()}  # noqa: SIM118 - state, not dict
