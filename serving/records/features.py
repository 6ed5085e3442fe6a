"""From decoded records to the feature matrix a model reads, and a schema's probe row.

The feature matrix has one column per :attr:`DataTypeSchema.columns` entry,
in schema order. When every feature is numeric it is float64 (booleans as
0.0 and 1.0), the fast path; otherwise it is an object array holding each
value as it is (strings stay strings, booleans stay booleans), for models
with categorical inputs. A missing (null) value is NaN, or None in an
object matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.pb.wine_record_pb2 import WineRecord
from serving.records.schema import DataTypeSchema
from serving.records.wire import DataRecord


def feature_matrix(records: Sequence[DataRecord | WineRecord], schema: DataTypeSchema) -> np.ndarray:
    """The feature matrix of ``records`` (all of ``schema``'s data type): [N, len(schema.columns)]."""
    columns = schema.columns
    if records and all(isinstance(r, WineRecord) for r in records):
        names = [c.field for c in columns]
        return np.asarray([[getattr(r, name) for name in names] for r in records], dtype=np.float64).reshape(
            -1, len(columns)
        )
    rows = [_row(r.values, schema) for r in records]
    if schema.numeric:
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(columns))
    matrix = np.empty((len(rows), len(columns)), dtype=object)
    for i, row in enumerate(rows):
        matrix[i, :] = row
    return matrix


def _row(values: dict[str, Any], schema: DataTypeSchema) -> list[Any]:
    row: list[Any] = []
    numeric = schema.numeric
    for column in schema.columns:
        value = values.get(column.field)
        if column.index is not None:
            value = value[column.index] if value is not None else None
        if value is None:
            row.append(float("nan") if numeric else None)
        elif numeric:
            row.append(float(value))
        else:
            row.append(value)
    return row


def probe_matrix(schema: DataTypeSchema, hints: Mapping[str, Any] | None = None) -> np.ndarray:
    """One feature row to probe a new model with.

    Each field takes the schema's example value, else its ``hints`` entry (a
    value the model declares valid), else a typical value of its type.
    """
    example = {**(hints or {}), **(schema.example or {})}
    values: dict[str, Any] = {}
    for f in schema.features:
        if f.name in example:
            values[f.name] = example[f.name]
        elif f.kind == "string":
            values[f.name] = ""
        elif f.kind == "boolean":
            values[f.name] = False
        elif f.kind == "array":
            values[f.name] = [0.0] * (f.length or 0)
        else:
            values[f.name] = 0.0
    return feature_matrix([DataRecord("probe", schema.data_type, 0, values)], schema)
