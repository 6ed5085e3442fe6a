"""Sources and sinks: the only part of the topology that touches connectors.

A job reads four streams (data records with where they came from, model,
schema and control messages) and writes up to seven (results, stats, dead
letters, model events; comparisons, a decoy's archive, and the control
messages it publishes itself). A :class:`JobIO` decides where they come from and go to:
:class:`~flink_jobs.io.files.CollectionIO` and :class:`~flink_jobs.io.files.FileIO`
for local runs and tests, :class:`~flink_jobs.io.kafka.KafkaIO` for Kafka.
"""

from __future__ import annotations

from typing import Protocol

from pyflink.datastream import DataStream, StreamExecutionEnvironment

#: The outputs every serving job writes: the four of every job, then the rendezvous' (issue 17).
OUTPUTS = ("results", "stats", "dead-letters", "model-events", "comparisons", "archive", "control")


class JobIO(Protocol):
    """Where a job's streams come from and go to.

    ``topic_prefix``: topics named this + a data type carry that data type ("" for none).
    """

    topic_prefix: str

    def data_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Data records as ``KAFKA_RECORD`` rows: topic, partition, offset, timestamp, the record's bytes."""

    def model_source(self, env: StreamExecutionEnvironment) -> DataStream:
        """Raw ModelDescriptor bytes."""

    def schema_source(self, env: StreamExecutionEnvironment) -> DataStream | None:
        """Raw DataTypeSchema bytes published while the job runs, or None when there are none."""

    def control_source(self, env: StreamExecutionEnvironment) -> DataStream | None:
        """Raw ModelControl bytes (roles, promotion, rollback, pins), or None when there are none."""

    def sink(self, output: str, stream: DataStream) -> None:
        """Write one of ``OUTPUTS`` (a stream of serialized protobufs)."""
