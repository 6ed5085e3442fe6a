"""``GET /audit/{record_id}``: which model scored a record, read from the topics when asked.

The results and model-events topics are read from their beginning to their
end with ``read_committed`` (:func:`serving.kafka.reading.read_values`, as
``modelserving audit`` does) and answered with :func:`serving.rollout.audit.audit`.
The reader is a parameter (topic name -> message values), so tests hand lists.
"""

from __future__ import annotations

from pydantic import BaseModel

from serving.rollout.audit import TopicReader, audit_topics

#: Seconds the default reader waits to reach the end of each topic.
AUDIT_TIMEOUT_S = 60.0


class AuditEventRef(BaseModel):
    """The event that began or ended a version's role."""

    kind: str
    ts: int
    version: str
    reason: str


class AuditSpan(BaseModel):
    """One time a version held a role: deployed by one event, retired by another (None: holds it still)."""

    deployed: AuditEventRef
    retired: AuditEventRef | None


class AuditSource(BaseModel):
    """Where the record was read."""

    topic: str
    partition: int
    offset: int


class AuditResult(BaseModel):
    """One result of the record and the life of the model version that produced it."""

    record_id: str
    data_type: str
    model_name: str
    model_version: str
    model_sha256: str
    #: The result's role ("champion" when it carries none).
    role: str
    record_ts: int
    source: AuditSource
    score: float
    error: str
    #: When that version took the role (None: no event shows it), and when it left it (None: it still holds it).
    deployed: AuditEventRef | None
    retired: AuditEventRef | None
    other_spans: list[AuditSpan]
    #: Key id that signed the version, "" unsigned, None when no event of the version is known.
    signed_by: str | None


class AuditAnswerView(BaseModel):
    """``GET /audit/{record_id}``: every result of the record (normally one)."""

    record_id: str
    results: list[AuditResult]
    #: Messages of either topic that did not decode (left out).
    skipped: int = 0


def audit_record(record_id: str, read: TopicReader, results_topic: str, events_topic: str) -> AuditAnswerView:
    """The audit answer for ``record_id`` over the two topics as ``read`` gives them.

    Raises:
        RecordNotScored: no result carries ``record_id``.
        TopicReadError: (the default reader) a topic could not be read to its end.
    """
    answer, skipped = audit_topics(record_id, read, results_topic, events_topic)
    return AuditAnswerView.model_validate({**answer.as_dict(), "skipped": skipped})
