"""Collect a fault run's evidence from Kafka: the output topics read to the end, committed and not, and their offsets.

Every read assigns all partitions of a topic directly (no consumer group is
joined, nothing is committed) and stops at the end of each partition: the last
stable offset for ``read_committed``, the high watermark for
``read_uncommitted`` (the reader is :mod:`serving.kafka.reading`'s).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from serving.faults.verdict import Evidence, PartitionOffsets, ScoredResult
from serving.kafka import reading
from serving.kafka.reading import Isolation, TopicReadError, end_reader, topic_partitions
from serving.kafka.settings import KafkaSettings
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.serving_result_pb2 import ServingResult

#: The oracle's throwaway consumer groups are named after it (they show in the broker's logs).
ORACLE = "faults-oracle"


class EvidenceError(TopicReadError):
    """The evidence could not be read completely (a missing topic, a broker error, a timeout)."""

    reason = "evidence unreadable"


@dataclass
class TopicRead:
    """One topic read to the end with one isolation level.

    Attributes:
        counts: Record id -> how many messages carry it.
        messages: Messages read (aborted ones too under ``read_uncommitted``; never control records).
        undecodable: Messages that were not of the topic's type.
        results: The decoded results (results topic only).
        reasons: Dead-letter reason -> how many (dead-letter topic only).
    """

    topic: str
    isolation: Isolation
    counts: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    undecodable: int = 0
    results: list[ScoredResult] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def _partitions(reader, topic: str, timeout_s: float) -> list[int]:
    try:
        return topic_partitions(reader, topic, timeout_s)
    except TopicReadError as exc:
        raise EvidenceError(str(exc)) from exc


def read_values(settings: KafkaSettings, topic: str, isolation: Isolation, timeout_s: float = 120.0) -> Iterator[bytes]:
    """Every message value of ``topic``, from the beginning to the end of each partition, with ``isolation``.

    Raises:
        EvidenceError: The topic is missing, the client reports a fatal or permanent
            error, or some partition's end was not reached within ``timeout_s``.
    """
    try:
        yield from reading.read_values(settings, topic, isolation, timeout_s, purpose=ORACLE)
    except TopicReadError as exc:
        raise EvidenceError(str(exc)) from exc


def read_results(settings: KafkaSettings, isolation: Isolation, timeout_s: float = 120.0) -> TopicRead:
    """The results topic read to the end: per record id counts and every decoded result."""
    read = TopicRead(settings.topics.results, isolation)
    for value in read_values(settings, read.topic, isolation, timeout_s):
        read.messages += 1
        try:
            result = ServingResult.FromString(value)
        except DecodeError:
            read.undecodable += 1
            continue
        read.counts[result.record_id] = read.counts.get(result.record_id, 0) + 1
        read.results.append(ScoredResult(result.record_id, result.model_version, result.score, result.error))
    return read


def read_dead_letters(settings: KafkaSettings, isolation: Isolation, timeout_s: float = 120.0) -> TopicRead:
    """The dead-letter topic read to the end: per record id counts (data records only) and per reason counts.

    A model's or schema's dead letter (``source`` other than ``data``) names
    no input record, so it takes no part in the id counts; its reason is counted.
    """
    read = TopicRead(settings.topics.dead_letters, isolation)
    for value in read_values(settings, read.topic, isolation, timeout_s):
        read.messages += 1
        try:
            letter = DeadLetter.FromString(value)
        except DecodeError:
            read.undecodable += 1
            continue
        if letter.source == "data":
            read.counts[letter.record_id] = read.counts.get(letter.record_id, 0) + 1
        read.reasons[letter.reason] = read.reasons.get(letter.reason, 0) + 1
    return read


def output_topics(settings: KafkaSettings) -> list[str]:
    """The topics the jobs write transactionally: results, dead letters, stats, model events."""
    topics = settings.topics
    return [topics.results, topics.dead_letters, topics.stats, topics.model_events]


def partition_offsets(
    settings: KafkaSettings, topics: Iterable[str], timeout_s: float = 30.0
) -> list[PartitionOffsets]:
    """(low, LSO, HW) of every partition of ``topics``, asked of the broker (never cached).

    A ``read_committed`` consumer's watermark query returns the last stable
    offset as its high mark, a ``read_uncommitted`` one's the high watermark
    (librdkafka sends the consumer's isolation level with the ListOffsets request).

    Raises:
        EvidenceError: A topic is missing or the broker did not answer within ``timeout_s``.
    """
    from confluent_kafka import TopicPartition

    committed = end_reader(settings, "read_committed", eof=False, purpose=ORACLE)
    uncommitted = end_reader(settings, "read_uncommitted", eof=False, purpose=ORACLE)
    try:
        offsets = []
        for topic in topics:
            for p in _partitions(committed, topic, timeout_s):
                tp = TopicPartition(topic, p)
                try:
                    low, lso = committed.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                    _, high = uncommitted.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                except Exception as exc:
                    raise EvidenceError(f"cannot get the offsets of {topic}[{p}]: {exc}") from exc
                offsets.append(PartitionOffsets(topic, p, low, lso, high))
        return offsets
    finally:
        committed.close()
        uncommitted.close()


def collect(
    settings: KafkaSettings,
    *,
    acked: Collection[str],
    sent: Collection[str] | None = None,
    timeout_s: float = 120.0,
) -> Evidence:
    """Everything C1-C6 need, read from the cluster after the run.

    The offsets are taken first: a transaction still open then is what C6 is
    about, and the reads that follow stop at each partition's end as it is then.
    ``open_transactions`` stays None: the installed confluent-kafka has no
    ``list_transactions``, so LSO == HW is C6's evidence.

    Args:
        settings: The cluster and topics of the run.
        acked: Ids of the input records the broker acknowledged.
        sent: Ids of every input record the driver tried to send (acked or not), if known.
        timeout_s: Per topic read.

    Raises:
        EvidenceError: A topic could not be read to its end.
    """
    offsets = partition_offsets(settings, output_topics(settings), min(timeout_s, 30.0))
    results = read_results(settings, "read_committed", timeout_s)
    aborted_too = read_results(settings, "read_uncommitted", timeout_s)
    dead = read_dead_letters(settings, "read_committed", timeout_s)
    dead_ids = [i for i, n in dead.counts.items() for _ in range(n)]
    return Evidence(
        acked=acked,
        results=results.results,
        dead_letters=dead_ids,
        results_committed=results.messages,
        results_uncommitted=aborted_too.messages,
        offsets=offsets,
        sent=sent,
        undecodable=results.undecodable + dead.undecodable,
    )
