"""The job's outputs as bytes and as JSON lines: results, dead letters, model events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from serving.clock import now_ms
from serving.core.model import BatchScores, Model
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import MemberOutcome, ServingResult
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.wire import NOWHERE, Coordinates

#: The role of a result the data type's champion produced (a canary's result says "canary").
CHAMPION_ROLE = "champion"


def results_for(
    model: Model, records: list[WineRecord], scores: BatchScores, where: Sequence[Coordinates] | None = None
) -> list[ServingResult]:
    """One ``ServingResult`` per record, naming the model and version that scored it.

    A remote model's scores also carry the version its server reported (``served_version``);
    an ensemble's, per record the member that decided (``decided_by``) and every member's outcome.

    Provenance: every result carries the scoring artifact's SHA-256 (``model_sha256``),
    role ``champion``, and where its record was read (``source_topic``, ``source_partition``,
    ``source_offset``): ``where[i]`` for record i when given, else the record's own ``where``
    (a decoded ``DataRecord`` knows it); a record read from nowhere known leaves them unset.
    """
    share = scores.duration_ns // max(len(records), 1)
    sha256 = getattr(model, "artifact_sha256", "")  # a stand-in model (tests, benchmarks) has no artifact
    served_version = getattr(scores, "served_version", "")
    decided_by = getattr(scores, "decided_by", ())
    outcomes = [
        MemberOutcome(name=o.name, version=o.version, status=o.status, latency_us=o.latency_us)
        for o in getattr(scores, "outcomes", ())
    ]
    results = []
    values = scores.scores.tolist() if hasattr(scores.scores, "tolist") else [float(v) for v in scores.scores]
    probabilities = scores.probabilities.tolist() if scores.probabilities is not None else None
    for i, record in enumerate(records):
        result = ServingResult(
            model_name=model.name,
            model_version=model.version,
            data_type=record.data_type,
            record_id=record.id,
            record_ts=record.ts,
            score=values[i],
            duration_ns=share,
            served_version=served_version,
            model_sha256=sha256,
            role=CHAMPION_ROLE,
        )
        locate(result, where[i] if where is not None else getattr(record, "where", NOWHERE))
        if probabilities is not None:
            result.probabilities.extend(probabilities[i])
        if scores.labels:  # also without probabilities: a label-only classifier's score is an index into them
            result.labels.extend(scores.labels)
        if decided_by:
            result.decided_by = decided_by[i]
            result.members.extend(outcomes)
        results.append(result)
    return results


def locate(result: ServingResult, where: Coordinates) -> None:
    """Set ``result``'s source coordinates from ``where``, unless it is unknown (no topic, no offset)."""
    if where.topic or where.offset >= 0:  # a file's row has no topic but an offset (its row number)
        result.source_topic, result.source_partition, result.source_offset = where.topic, where.partition, where.offset


#: Leading bytes of the original message a dead letter keeps unless told otherwise.
DEAD_LETTER_MAX_PAYLOAD_BYTES = 256 * 1024


def dead_letter(
    source: str,
    reason: str,
    detail: str,
    payload: bytes,
    *,
    data_type: str = "",
    record_id: str = "",
    max_payload_bytes: int = DEAD_LETTER_MAX_PAYLOAD_BYTES,
) -> DeadLetter:
    """A dead letter keeping why the message was refused, its size and SHA-256, and its bytes.

    At most ``max_payload_bytes`` leading bytes are kept (``payload_truncated``
    says when they were cut), so a dead letter always fits the dead-letter
    topic however large the input was: writing it can never fail the job.
    """
    payload = bytes(payload)
    return DeadLetter(
        source=source,
        reason=reason,
        detail=detail[:1000],
        payload=payload[:max_payload_bytes],
        ts=now_ms(),
        data_type=data_type[:200],
        record_id=record_id[:200],
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_truncated=len(payload) > max_payload_bytes,
    )


def result_to_json(result: ServingResult) -> str:
    """One JSON line for a result (the ``run`` command's output format)."""
    out = {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "data_type": result.data_type,
        "record_id": result.record_id,
        "record_ts": result.record_ts,
        "score": result.score,
        "duration_ns": result.duration_ns,
    }
    if result.probabilities:
        out["probabilities"] = list(result.probabilities)
    if result.labels:
        out["labels"] = list(result.labels)
    if result.error:
        out["error"] = result.error
    if result.served_version:
        out["served_version"] = result.served_version
    if result.decided_by:
        out["decided_by"] = result.decided_by
    if result.members:
        out["members"] = [
            {"name": m.name, "version": m.version, "status": m.status, "latency_us": m.latency_us}
            for m in result.members
        ]
    if result.role:
        out["role"] = result.role
    if result.model_sha256:
        out["model_sha256"] = result.model_sha256
    if result.model_sha256:  # a result of this release: its source is known (offset 0 included)
        out["source"] = {
            "topic": result.source_topic,
            "partition": result.source_partition,
            "offset": result.source_offset,
        }
    return json.dumps(out)


def dead_letter_to_json(letter: DeadLetter) -> str:
    """One JSON line for a dead letter; the payload is hex so nothing is lost."""
    return json.dumps(
        {
            "source": letter.source,
            "reason": letter.reason,
            "detail": letter.detail,
            "data_type": letter.data_type,
            "record_id": letter.record_id,
            "ts": letter.ts,
            "payload_hex": letter.payload.hex(),
            "payload_size": letter.payload_size,
            "payload_sha256": letter.payload_sha256,
            "payload_truncated": letter.payload_truncated,
        }
    )


def model_event_to_json(event: ModelEvent) -> str:
    """One JSON line for a model event."""
    out = {
        "kind": ModelEvent.Kind.Name(event.kind),
        "name": event.name,
        "version": event.version,
        "data_type": event.data_type,
        "reason": event.reason,
        "previous_version": event.previous_version,
        "ts": event.ts,
    }
    if event.kind == ModelEvent.LATE_MODEL:
        out.update(
            missed=event.missed,
            missed_from=event.missed_from,
            missed_to=event.missed_to,
            missed_exact=event.missed_exact,
            instance=event.instance,
        )
    return json.dumps(out)
