"""Building the serving jobs. Tests and the CLI call the same functions.

``keyed`` and ``partitioned`` serve models; ``passthrough`` is the framework's
own ceiling for benchmarks: the same sources, decoding and sinks, but one
result per record with no model and no state.

``build_job`` only declares the graph on an environment; running it is the
caller's choice (``env.execute``, ``execute_async``, or ``flink run``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pyflink.common import Time, Types
from pyflink.datastream import AsyncDataStream, AsyncRetryStrategy, DataStream, OutputTag, StreamExecutionEnvironment

from flink_jobs.functions.keyed import ModelServingKeyed
from flink_jobs.functions.pairs import ComparePairs, ComparisonKey
from flink_jobs.functions.partitioned import BROADCAST_STATE, ModelServingPartitioned
from flink_jobs.functions.passthrough import Passthrough
from flink_jobs.functions.remote import RemoteScoring, SplitRemoteOutcomes
from flink_jobs.ingest import bundled, keyed_by_first_field, routed_models, routed_records, split_results
from flink_jobs.io import JobIO
from flink_jobs.tags import ARCHIVE, BYTES, COMPARISONS, CONTROL, DEAD_LETTERS, MODEL_EVENTS, REMOTE_REQUESTS, STATS
from serving.core.remote_batches import worth_retrying
from serving.settings import JobSettings, ServingOptions

#: Savepoints map state to operator uids: every uid, by job, is recorded in state_layout.json
#: (see docs/state-compatibility.md).

#: Partitioned job: hash buckets of record ids per instance (the keys of its keyed state).
BUCKETS_PER_INSTANCE = 4


@dataclass
class ServingStreams:
    """The outputs of a serving job, before they are sunk (the passthrough job has only the first four)."""

    results: DataStream
    stats: DataStream
    dead_letters: DataStream
    model_events: DataStream
    comparisons: DataStream | None = None
    archive: DataStream | None = None
    control: DataStream | None = None


class _DataTypeKey:
    def __call__(self, row) -> str:
        return row.data_type


def serving_streams(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare sources, decoding, event time and the serving function for ``settings.job``."""
    buckets = BUCKETS_PER_INSTANCE * settings.parallelism if settings.job == "partitioned" else 0
    skew = settings.options.max_future_skew_ms
    records = routed_records(io.data_source(env), settings.out_of_orderness_ms, buckets, skew, io.topic_prefix)
    bundles = bundled(records, settings.boundary_batch_records, settings.boundary_batch_ms)
    controls = io.control_source(env) if settings.job != "passthrough" else None
    models = routed_models(
        io.model_source(env),
        io.schema_source(env),
        settings.out_of_orderness_ms,
        settings.model_idle_ms,
        skew,
        controls,
    )
    if settings.job == "passthrough":
        served = (
            bundles.process(Passthrough(settings.options), output_type=BYTES)
            .uid("serve-passthrough")
            .name("Passthrough")
        )
    elif settings.job == "keyed":
        served = (
            keyed_by_first_field(bundles, BYTES)
            .connect(models.key_by(_DataTypeKey(), key_type=Types.STRING()))
            .process(ModelServingKeyed(settings.options), output_type=BYTES)
            .uid("serve-keyed")
            .name("ModelServingKeyed")
        )
    else:
        served = (
            keyed_by_first_field(bundles, BYTES)
            .connect(models.broadcast(*BROADCAST_STATE))
            .process(ModelServingPartitioned(settings.options), output_type=BYTES)
            .uid("serve-partitioned")
            .name("ModelServingPartitioned")
        )
    streams = ServingStreams(
        results=split_results(served),
        stats=served.get_side_output(STATS),  # the passthrough job never writes it
        dead_letters=served.get_side_output(DEAD_LETTERS),
        model_events=served.get_side_output(MODEL_EVENTS),
    )
    if settings.job != "passthrough":
        # The side output as the JVM has it: PyFlink's get_side_output adds an identity map in Python, which
        # would fuse with the async operator under the map's missing uid (its batches in flight need one).
        requests = jvm_side_output(served, REMOTE_REQUESTS)
        streams = with_remote_scoring(streams, requests, settings.options)
        streams = with_comparisons(streams, served, settings.options)
    return streams


def with_comparisons(streams: ServingStreams, served: DataStream, options: ServingOptions) -> ServingStreams:
    """Count the serving function's comparisons per pair of versions (``compare-pairs``, keyed by data type).

    Their stats join the stats, their ``PROMOTE_RECOMMENDED`` events the model
    events; the comparisons themselves, a decoy's archive and the job's own
    control messages (``auto_promote``) become outputs of their own.
    """
    comparisons = jvm_side_output(served, COMPARISONS)
    pairs = (
        comparisons.key_by(ComparisonKey(), key_type=Types.STRING())
        .process(ComparePairs(options), output_type=BYTES)
        .uid("compare-pairs")
        .name("ComparePairs")
    )
    return dataclasses.replace(
        streams,
        stats=streams.stats.union(pairs),
        model_events=streams.model_events.union(jvm_side_output(pairs, MODEL_EVENTS)),
        comparisons=comparisons,
        archive=jvm_side_output(served, ARCHIVE),
        control=jvm_side_output(pairs, CONTROL),
    )


def with_remote_scoring(streams: ServingStreams, requests: DataStream, options: ServingOptions) -> ServingStreams:
    """Score remote models' batches in PyFlink's async operator; join its outcomes to the job's outputs.

    Unordered: results are keyed by record id, not by order, and a slow batch
    must not hold back the others. The operator checkpoints the batches in
    flight, so a restore asks again for what had no answer. A batch whose
    server was unavailable is asked again by Flink's retry strategy, every
    ``remote_async_backoff_ms``, up to ``remote_async_retries`` times, before
    its dead letters stand (:func:`serving.core.remote_batches.worth_retrying`).
    """
    retry = AsyncRetryStrategy.fixed_delay(
        options.remote_async_retries + 1, options.remote_async_backoff_ms, worth_retrying, None
    )
    outcomes = (
        AsyncDataStream.unordered_wait_with_retry(
            requests,
            RemoteScoring(options),
            Time.milliseconds(options.remote_async_timeout_ms),
            retry,
            options.remote_async_capacity,
            output_type=BYTES,
        )
        .uid("remote-scoring")
        .name("RemoteScoring")
    )
    split = outcomes.process(SplitRemoteOutcomes(), output_type=BYTES).uid("remote-outcomes").name("remote outcomes")
    return ServingStreams(
        results=streams.results.union(split),
        stats=streams.stats.union(jvm_side_output(split, STATS)),
        dead_letters=streams.dead_letters.union(jvm_side_output(split, DEAD_LETTERS)),
        model_events=streams.model_events,
    )


def jvm_side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """``stream``'s side output as the JVM has it, without the identity map in Python that PyFlink's adds."""
    return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))


def build_job(env: StreamExecutionEnvironment, settings: JobSettings, io: JobIO) -> ServingStreams:
    """Declare the whole job, outputs sunk through ``io``; returns the output streams."""
    streams = serving_streams(env, settings, io)
    io.sink("results", streams.results)
    io.sink("stats", streams.stats)
    io.sink("dead-letters", streams.dead_letters)
    io.sink("model-events", streams.model_events)
    for output, stream in (("comparisons", streams.comparisons), ("archive", streams.archive)):
        if stream is not None:
            io.sink(output, stream)
    if streams.control is not None:
        io.sink("control", streams.control)
    return streams
