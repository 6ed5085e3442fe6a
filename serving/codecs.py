"""Protobuf bytes <-> domain objects, with validation of meaning, not just syntax.

proto3 parses many random byte strings without complaint, so a decode that
does not raise is not yet a valid record: :func:`decode_record` also checks
the size cap, the id, the data type and that every feature is finite.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
from google.protobuf.message import DecodeError

from serving import wine
from serving.errors import RecordDecodeError
from serving.model import BatchScores, Model
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.pb.wine_record_pb2 import WineRecord

#: Records larger than this are refused before parsing (a wine record is ~110 bytes).
MAX_RECORD_BYTES = 64 * 1024

#: A data type names a stream of records sharing the wine schema ("wine", "wine-white", ...).
DATA_TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def now_ms() -> int:
    """Wall-clock time in Unix epoch milliseconds."""
    return int(time.time() * 1000)


def encode_record(record_id: str, features, *, ts: int | None = None, data_type: str = wine.DATA_TYPE) -> bytes:
    """Serialize one wine feature row (11 floats) as ``WineRecord`` bytes."""
    values = [float(v) for v in features]
    if len(values) != wine.N_FEATURES:
        raise RecordDecodeError(f"a wine record has {wine.N_FEATURES} features, got {len(values)}")
    record = WineRecord(id=record_id, data_type=data_type, ts=now_ms() if ts is None else ts)
    for field, value in zip(wine.RECORD_FIELDS, values):
        setattr(record, field, value)
    return record.SerializeToString()


def decode_record(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> WineRecord:
    """Parse and validate ``WineRecord`` bytes.

    Raises:
        RecordDecodeError: empty, oversized, unparsable, no id, a data type
            that is not a lower-case name (``DATA_TYPE_PATTERN``), or a feature
            that is NaN or infinite.
    """
    if not data:
        raise RecordDecodeError("record is empty")
    if len(data) > max_bytes:
        raise RecordDecodeError(f"record is {len(data)} bytes, over the {max_bytes}-byte cap")
    record = WineRecord()
    try:
        record.ParseFromString(data)
    except DecodeError as exc:
        raise RecordDecodeError(f"not a WineRecord: {exc}") from exc
    if not record.id:
        raise RecordDecodeError("record has no id")
    if not DATA_TYPE_PATTERN.fullmatch(record.data_type):
        raise RecordDecodeError(f"record {record.id!r} has a bad data type {record.data_type[:80]!r}")
    for field in wine.RECORD_FIELDS:
        if not math.isfinite(getattr(record, field)):
            raise RecordDecodeError(f"record {record.id!r} has a non-finite {field}")
    return record


def record_features(record: WineRecord) -> list[float]:
    """The 11 features of a record, in model column order."""
    return [getattr(record, field) for field in wine.RECORD_FIELDS]


def features_matrix(records: list[WineRecord]) -> np.ndarray:
    """Feature rows of several records as float64 [N, 11]."""
    return np.asarray([record_features(r) for r in records], dtype=np.float64).reshape(-1, wine.N_FEATURES)


def results_for(model: Model, records: list[WineRecord], scores: BatchScores) -> list[ServingResult]:
    """One ``ServingResult`` per record, naming the model and version that scored it."""
    share = scores.duration_ns // max(len(records), 1)
    results = []
    for i, record in enumerate(records):
        result = ServingResult(
            model_name=model.name,
            model_version=model.version,
            data_type=record.data_type,
            record_id=record.id,
            record_ts=record.ts,
            score=float(scores.scores[i]),
            duration_ns=share,
        )
        if scores.probabilities is not None:
            result.probabilities.extend(float(p) for p in scores.probabilities[i])
            result.labels.extend(scores.labels)
        results.append(result)
    return results


def dead_letter(
    source: str, reason: str, detail: str, payload: bytes, *, data_type: str = "", record_id: str = ""
) -> DeadLetter:
    """A dead letter keeping the original bytes and why they were refused."""
    return DeadLetter(
        source=source,
        reason=reason,
        detail=detail[:1000],
        payload=payload,
        ts=now_ms(),
        data_type=data_type,
        record_id=record_id,
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
    if result.error:
        out["error"] = result.error
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
        }
    )


def model_event_to_json(event: ModelEvent) -> str:
    """One JSON line for a model event."""
    return json.dumps(
        {
            "kind": ModelEvent.Kind.Name(event.kind),
            "name": event.name,
            "version": event.version,
            "data_type": event.data_type,
            "reason": event.reason,
            "previous_version": event.previous_version,
            "ts": event.ts,
        }
    )
