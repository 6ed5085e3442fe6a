"""Batches across the JVM-Python boundary: what a serving function takes and gives as one element.

Every element that crosses between the JVM and a Python worker costs tens of
microseconds, whatever its size (BENCHMARKS.md, issues 8 and 16). So the JVM
bundles a key's records into one ``RecordBatch`` (``RecordBundler`` in
``scripts/java``), a serving function answers a call with at most one
``ResultBatch``, and the JVM splits that into one element per result
(``SplitResults``). Side outputs (stats, dead letters, model events) are
rare and stay one element each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from serving.codecs.outputs import dead_letter
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.record_batch_pb2 import BatchedRecord, RecordBatch, ResultBatch
from serving.records.wire import Coordinates
from serving.settings import ServingOptions

#: The dead-letter reason of a record that was behind the watermark on arrival (``late_records: dead-letter``).
LATE = "late"


def records_of(batch: bytes) -> Iterable[BatchedRecord]:
    """The routed records of one ``RecordBatch`` element, in the order the JVM bundled them.

    Each has the fields of the routed row it stands for (``data_type``,
    ``id``, ``ts``, ``payload``, ``topic``, ``partition``, ``offset``,
    ``kafka_ts``) and ``late``.
    """
    return RecordBatch.FromString(bytes(batch)).records


def results_batched(outputs: Iterable) -> Iterator:
    """``outputs`` with its results (bare bytes) gathered into one ``ResultBatch``, yielded last.

    Side outputs (``(tag, bytes)`` pairs) pass through as they come. No
    results, no batch: an empty element would still cost a crossing.
    """
    results: list[bytes] = []
    for output in outputs:
        if isinstance(output, tuple):
            yield output
        else:
            results.append(output)
    if results:
        yield ResultBatch(results=results).SerializeToString()


def late_letter(record: BatchedRecord, where: Coordinates, options: ServingOptions) -> DeadLetter:
    """The dead letter of a record that arrived behind the watermark, with its bytes."""
    return dead_letter(
        "data",
        LATE,
        f"ts {record.ts} was behind the watermark on arrival (late_records: dead-letter)",
        bytes(record.payload),
        data_type=record.data_type,
        record_id=record.id or (where.record_id() if where.topic else ""),
        max_payload_bytes=options.dead_letter_max_payload_bytes,
    )
