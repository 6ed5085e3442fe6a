"""Records of any data type from files: a CSV with a header row, or JSON lines.

A CSV's header names schema fields (extra columns are ignored; ``,`` or
``;`` separates); each value is read as its field's type (an empty cell is
null). A JSON-lines file holds one object per line. Either way every row is
checked against the schema, and a row that fails names its line and field.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from serving.errors import EmptyInputError, InputError
from serving.records.schema import DataTypeSchema, Field
from serving.records.wire import Coordinates, DataRecord, check_values


def read_rows(path: str | Path, schema: DataTypeSchema) -> list[dict[str, Any]]:
    """Every row of ``path`` as checked field values.

    Raises:
        InputError: the file cannot be read, a CSV header lacks schema fields
            (all named), or a row does not fit the schema (its line named).
        EmptyInputError: the file has no rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read data file {path}: {exc}") from exc
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise EmptyInputError(f"{path} holds no rows")
    rows = _json_rows(text, path) if first.lstrip().startswith("{") else _csv_rows(text, path, schema)
    if not rows:
        raise EmptyInputError(f"{path} holds no rows")
    checked = []
    for line, row in rows:
        try:
            checked.append(check_values(row, schema))
        except InputError as exc:
            raise InputError(f"{path}:{line}: {exc}") from exc
    return checked


def read_records(path: str | Path, schema: DataTypeSchema, ts: int = 0) -> list[DataRecord]:
    """The rows of ``path`` as records: ids from the schema's id field, else the 0-based row index."""
    records = []
    for index, values in enumerate(read_rows(path, schema)):
        record_id = str(values[schema.id_field]) if schema.id_field else str(index)
        when = values[schema.ts_field] if schema.ts_field else ts
        records.append(DataRecord(record_id, schema.data_type, when, values, b"", Coordinates(offset=index)))
    return records


def _json_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise InputError(f"{path}:{line_no}: not JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise InputError(f"{path}:{line_no}: a JSON line must be an object")
        rows.append((line_no, row))
    return rows


def _csv_rows(text: str, path: Path, schema: DataTypeSchema) -> list[tuple[int, dict[str, Any]]]:
    lines = text.splitlines()
    delimiter = ";" if lines and lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    if reader.fieldnames is None:
        return []
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [f.name for f in schema.fields if f.name not in header and not f.nullable]
    if missing:
        raise InputError(f"{path}: the header lacks field(s) of {schema.data_type!r}: {', '.join(missing)}")
    wanted = [f for f in schema.fields if f.name in header]
    rows = []
    for line_no, raw in enumerate(reader, start=2):
        cells = {key.strip(): value for key, value in raw.items() if key is not None}
        try:
            rows.append((line_no, {f.name: _cell(cells.get(f.name), f) for f in wanted}))
        except ValueError as exc:
            raise InputError(f"{path}:{line_no}: {exc}") from exc
    return rows


def _cell(text: str | None, spec: Field) -> Any:
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if spec.kind == "string":
        return text
    if spec.kind == "boolean":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"field {spec.name!r} is {text!r}, not a boolean")
    if spec.kind == "array":
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, list):
            raise ValueError(f"field {spec.name!r} is {text!r}, not a JSON array of numbers")
        return [float(v) for v in parsed]
    try:
        return int(text) if spec.kind == "integer" else float(text)
    except ValueError as exc:
        raise ValueError(f"field {spec.name!r} is {text!r}, not {spec.avro_type}") from exc
