"""Building the serving jobs. Tests and the CLI call the same functions.

``keyed`` and ``partitioned`` serve models; ``passthrough`` is the framework's
own ceiling for benchmarks: the same sources, decoding and sinks, but one
result per record with no model and no state.

``build_job`` only declares the graph on an environment; running it is the
caller's choice (``env.execute``, ``execute_async``, or ``flink run``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from flink_jobs.functions.keyed import ModelServingKeyed
from flink_jobs.functions.partitioned import BROADCAST_STATE, ModelServingPartitioned
from flink_jobs.functions.passthrough import Passthrough
from flink_jobs.ingest import keyed_by_first_field, routed_models, routed_records
from flink_jobs.io import JobIO
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS, RECORD_ROW, STATS
from serving.settings import JobSettings

#: Savepoints map state to operator uids: every uid, by job, is recorded in state_layout.json
#: (see docs/state-compatibility.md).

#: Partitioned job: hash buckets of record ids per instance (the keys of its keyed state).
BUCKETS_PER_INSTANCE = 4


@dataclass
class ServingStreams:
    """The four outputs of a serving job, before they are sunk."""

    results: DataStream
    stats: DataStream
    dead_letters: DataStream
    model_events: DataStream


class _DataTypeKey:
    def __call__(self, row) -> str:
        return row.data_type


def serving_streams(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare sources, decoding, event time and the serving function for ``settings.job``."""
    buckets = BUCKETS_PER_INSTANCE * settings.parallelism if settings.job == "partitioned" else 0
    skew = settings.options.max_future_skew_ms
    records = routed_records(io.data_source(env), settings.out_of_orderness_ms, buckets, skew, io.topic_prefix)
    models = routed_models(
        io.model_source(env), io.schema_source(env), settings.out_of_orderness_ms, settings.model_idle_ms, skew
    )
    if settings.job == "passthrough":
        served = (
            records.process(Passthrough(settings.options), output_type=BYTES)
            .uid("serve-passthrough")
            .name("Passthrough")
        )
    elif settings.job == "keyed":
        served = (
            keyed_by_first_field(records, RECORD_ROW)
            .connect(models.key_by(_DataTypeKey(), key_type=Types.STRING()))
            .process(ModelServingKeyed(settings.options), output_type=BYTES)
            .uid("serve-keyed")
            .name("ModelServingKeyed")
        )
    else:
        served = (
            keyed_by_first_field(records, RECORD_ROW)
            .connect(models.broadcast(*BROADCAST_STATE))
            .process(ModelServingPartitioned(settings.options), output_type=BYTES)
            .uid("serve-partitioned")
            .name("ModelServingPartitioned")
        )
    return ServingStreams(
        results=served,
        stats=served.get_side_output(STATS),  # the passthrough job never writes it
        dead_letters=served.get_side_output(DEAD_LETTERS),
        model_events=served.get_side_output(MODEL_EVENTS),
    )


def build_job(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare the whole job, outputs sunk through ``io``; returns the output streams."""
    streams = serving_streams(env, settings, io)
    io.sink("results", streams.results)
    io.sink("stats", streams.stats)
    io.sink("dead-letters", streams.dead_letters)
    io.sink("model-events", streams.model_events)
    return streams
