"""Building the two serving jobs. Tests and the CLI call the same functions.

``build_job`` only declares the graph on an environment; running it is the
caller's choice (``env.execute``, ``execute_async``, or ``flink run``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from flink_jobs.ingest import decoded_models, decoded_records
from flink_jobs.io import JobIO
from flink_jobs.keyed import ModelServingKeyed
from flink_jobs.partitioned import MODELS, ModelServingPartitioned, bucket_of
from flink_jobs.tags import BYTES, DEAD_LETTERS, MODEL_EVENTS, STATS
from serving.settings import JobSettings

#: Job names as Flink shows them.
JOB_NAMES = {"keyed": "ModelServingKeyedJob", "partitioned": "ModelServingFlatJob"}

#: Every operator uid, by job. Savepoints map state to these: see docs/state-compatibility.md.
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


class _BucketKey:
    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    def __call__(self, row) -> str:
        return bucket_of(row.id, self.buckets)


def serving_streams(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare sources, decoding, event time and the serving function for ``settings.job``."""
    records, record_dead = decoded_records(io.data_source(env), settings.out_of_orderness_ms)
    models, model_dead, model_rejected = decoded_models(
        io.model_source(env), settings.out_of_orderness_ms, settings.model_idle_ms
    )
    if settings.job == "keyed":
        served = (
            records.key_by(_DataTypeKey(), key_type=Types.STRING())
            .connect(models.key_by(_DataTypeKey(), key_type=Types.STRING()))
            .process(ModelServingKeyed(settings.options), output_type=BYTES)
            .uid("serve-keyed")
            .name("ModelServingKeyed")
        )
    else:
        buckets = BUCKETS_PER_INSTANCE * settings.parallelism
        served = (
            records.key_by(_BucketKey(buckets), key_type=Types.STRING())
            .connect(models.broadcast(MODELS))
            .process(ModelServingPartitioned(settings.options), output_type=BYTES)
            .uid("serve-partitioned")
            .name("ModelServingPartitioned")
        )
    return ServingStreams(
        results=served,
        stats=served.get_side_output(STATS),
        dead_letters=record_dead.union(model_dead, served.get_side_output(DEAD_LETTERS)),
        model_events=model_rejected.union(served.get_side_output(MODEL_EVENTS)),
    )


def build_job(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare the whole job, outputs sunk through ``io``; returns the output streams."""
    streams = serving_streams(env, settings, io)
    io.sink("results", streams.results)
    io.sink("stats", streams.stats)
    io.sink("dead-letters", streams.dead_letters)
    io.sink("model-events", streams.model_events)
    return streams
