"""The wine-quality data type, the bundled example: its record type, the ``;``-separated CSV, the reference data.

Records travel as ``WineRecord`` protobufs (``protos/wine_record.proto``):
an id, a data type, ``ts`` and the 11 features as proto3 ``optional``
doubles, so a missing feature is told apart from 0.0.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from serving.clock import now_ms
from serving.errors import (
    EmptyInputError,
    EmptyRecordError,
    InputError,
    InputShapeError,
    MissingFeatureError,
    RecordDecodeError,
    RecordTooLarge,
)
from serving.pb.wine_record_pb2 import WineRecord
from serving.records.base import DATA_TYPE_PATTERN, MAX_RECORD_BYTES, RecordType

DATA_TYPE = "wine"

#: Feature names as the UCI data set (and the reference PMML files) spell them.
FEATURE_NAMES: tuple[str, ...] = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)

#: The same features as ``WineRecord`` protobuf field names, in the same order.
RECORD_FIELDS: tuple[str, ...] = (
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "residual_sugar",
    "chlorides",
    "free_sulfur_dioxide",
    "total_sulfur_dioxide",
    "density",
    "ph",
    "sulphates",
    "alcohol",
)

N_FEATURES = len(FEATURE_NAMES)

#: A realistic wine (row 0 of the data set) used to probe a model before a swap.
PROBE_ROW: tuple[float, ...] = (7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4)


@dataclass(frozen=True)
class WineData:
    """Parsed wine CSV: ``features`` is float64 [N, 11]; ``quality`` is [N] or None."""

    features: np.ndarray
    quality: np.ndarray | None


def reference_dir() -> Path:
    """Directory of the shipped reference data and models (see ATTRIBUTION.md)."""
    return Path(str(resources.files("serving") / "reference"))


def reference_csv() -> Path:
    """Path of the shipped UCI red-wine CSV (1,599 rows)."""
    return reference_dir() / "winequality_red.csv"


def read_wine_csv(path: str | Path) -> WineData:
    """Read a wine CSV: ``;``-separated, no header, 11 features and an optional quality.

    Raises:
        InputError: the file is missing or a value is not a number.
        EmptyInputError: the file has no rows.
        InputShapeError: a row has neither 11 nor 12 columns, or rows disagree.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read data file {path}: {exc.strerror}") from exc
    rows: list[list[float]] = []
    width: int | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(";")
        if len(cells) not in (N_FEATURES, N_FEATURES + 1):
            raise InputShapeError(
                f"{path}:{line_no}: expected {N_FEATURES} features (plus an optional quality), got {len(cells)} columns"
            )
        if width is not None and len(cells) != width:
            raise InputShapeError(f"{path}:{line_no}: {len(cells)} columns, earlier rows had {width}")
        width = len(cells)
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError as exc:
            raise InputError(f"{path}:{line_no}: not a number: {exc}") from exc
    if not rows:
        raise EmptyInputError(f"{path} holds no rows")
    table = np.asarray(rows, dtype=np.float64)
    if width == N_FEATURES + 1:
        return WineData(features=table[:, :N_FEATURES].copy(), quality=table[:, N_FEATURES].copy())
    return WineData(features=table, quality=None)


# --------------------------------------------------------------------------- the WineRecord codec


def encode_record(record_id: str, features, *, ts: int | None = None, data_type: str = DATA_TYPE) -> bytes:
    """Serialize one wine feature row (11 floats) as ``WineRecord`` bytes."""
    values = [float(v) for v in features]
    if len(values) != N_FEATURES:
        raise RecordDecodeError(f"a wine record has {N_FEATURES} features, got {len(values)}")
    record = WineRecord(id=record_id, data_type=data_type, ts=now_ms() if ts is None else ts)
    for field, value in zip(RECORD_FIELDS, values):
        setattr(record, field, value)
    return record.SerializeToString()


#: The 11 features of a record as a tuple, in model column order.
_features_of = operator.attrgetter(*RECORD_FIELDS)


def decode_record(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> WineRecord:
    """Parse and validate ``WineRecord`` bytes.

    Raises:
        RecordDecodeError: empty (a Kafka tombstone too), oversized,
            unparsable, no id, a data type that is not a lower-case name
            (``DATA_TYPE_PATTERN``), a feature missing (named), or a feature
            that is NaN or infinite.
    """
    if not data:
        raise EmptyRecordError("record is empty (a null Kafka value, a tombstone, or zero bytes)")
    if len(data) > max_bytes:
        raise RecordTooLarge(f"record is {len(data):,} bytes, over the {max_bytes:,}-byte cap")
    record = WineRecord()
    try:
        record.ParseFromString(data)
    except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter on bad UTF-8
        raise RecordDecodeError(f"not a WineRecord: {exc}") from exc
    if not record.id:
        raise RecordDecodeError("record has no id")
    if not DATA_TYPE_PATTERN.fullmatch(record.data_type):
        raise RecordDecodeError(f"record {record.id!r} has a bad data type {record.data_type[:80]!r}")
    missing = [field for field in RECORD_FIELDS if not record.HasField(field)]
    if missing:
        raise MissingFeatureError(f"record {record.id!r} lacks {', '.join(missing)}")
    # One sum is finite when every feature is (NaN and inf carry through it); only a record whose sum
    # is not is looked at feature by feature, for the error that names it (a sum can overflow too).
    if not math.isfinite(sum(_features_of(record))):
        for field in RECORD_FIELDS:
            if not math.isfinite(getattr(record, field)):
                raise RecordDecodeError(f"record {record.id!r} has a non-finite {field}")
    return record


def record_features(record: WineRecord) -> list[float]:
    """The 11 features of a record, in model column order."""
    return list(_features_of(record))


def features_matrix(records: list[WineRecord]) -> np.ndarray:
    """Feature rows of several records as float64 [N, 11]."""
    return np.asarray([record_features(r) for r in records], dtype=np.float64).reshape(-1, N_FEATURES)


class WineRecordType(RecordType):
    """The wine record type: WineRecord protobufs with 11 physico-chemical features."""

    name = DATA_TYPE
    field_names = RECORD_FIELDS
    feature_names = FEATURE_NAMES
    probe_row = PROBE_ROW

    def decode(self, payload: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> WineRecord:
        """See :func:`decode_record`."""
        return decode_record(payload, max_bytes=max_bytes)

    def parse(self, payload: bytes) -> WineRecord:
        """Parse WineRecord bytes kept in state (validated when they arrived)."""
        return WineRecord.FromString(bytes(payload))

    def encode(self, record_id: str, features, *, ts: int, data_type: str = DATA_TYPE) -> bytes:
        """See :func:`encode_record`."""
        return encode_record(record_id, features, ts=ts, data_type=data_type)

    def features(self, records) -> np.ndarray:
        """See :func:`features_matrix`."""
        return features_matrix(list(records))


WINE = WineRecordType()
