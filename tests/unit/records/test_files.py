"""Records from files: a CSV with a header row, or JSON lines, checked against the data type's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.errors import EmptyInputError, InputError
from serving.records.files import read_records, read_rows
from serving.records.schema import DataTypeSchema

IRIS = DataTypeSchema.parse(
    {
        "type": "record",
        "name": "iris",
        "modelserving.id": "plant",
        "fields": [
            {"name": "plant", "type": "string"},
            {"name": "sepal_length", "type": "double"},
            {"name": "petals", "type": "int"},
            {"name": "wild", "type": "boolean"},
            {"name": "note", "type": ["null", "string"]},
        ],
    }
)
#: What the rows below hold, typed by hand.
EXPECTED: list[dict[str, Any]] = [
    {"plant": "p1", "sepal_length": 5.1, "petals": 3, "wild": True, "note": "tall"},
    {"plant": "p2", "sepal_length": 4.9, "petals": 5, "wild": False, "note": None},
]


def write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_reads_typed_rows_and_ignores_extra_columns(tmp_path: Path) -> None:
    """Columns are matched by header name in any order; unknown columns are dropped; empty nullable is None."""
    csv = "species,wild,petals,plant,sepal_length,note\nsetosa,true,3,p1,5.1,tall\nvirginica,false,5,p2,4.9,\n"
    rows = read_rows(write(tmp_path, csv), IRIS)
    assert rows == EXPECTED
    assert all("species" not in row for row in rows)
    assert type(rows[0]["petals"]) is int and type(rows[0]["sepal_length"]) is float


def test_semicolon_csv_and_spaced_header_names(tmp_path: Path) -> None:
    """``;`` separates when the header has more of them than commas; names and cells are stripped."""
    csv = "plant ; sepal_length ; petals ; wild ; note\np1 ; 5.1 ; 3 ; yes ; tall\np2;4.9;5;0;\n"
    assert read_rows(write(tmp_path, csv), IRIS) == EXPECTED


def test_a_nullable_column_may_be_absent_from_the_header(tmp_path: Path) -> None:
    """A ``["null", ...]`` field need not be a column; every row then has it as None."""
    rows = read_rows(write(tmp_path, "plant,sepal_length,petals,wild\np1,5.1,3,1\n"), IRIS)
    assert rows == [{**EXPECTED[0], "note": None}]


def test_json_lines_read_every_object_and_skip_blank_lines(tmp_path: Path) -> None:
    """One JSON object per line (blank lines skipped), extra keys ignored, values checked and typed."""
    lines = [json.dumps({**EXPECTED[0], "petals": 3.0, "extra": 1}), "", json.dumps({**EXPECTED[1], "note": None})]
    rows = read_rows(write(tmp_path, "\n".join(lines) + "\n", "rows.jsonl"), IRIS)
    assert rows == EXPECTED and type(rows[0]["petals"]) is int


def test_a_header_lacking_schema_fields_names_them_all_in_one_line(tmp_path: Path) -> None:
    """A CSV without required fields fails before any row, naming each missing field (not the nullable one)."""
    path = write(tmp_path, "plant,wild,colour\np1,true,red\n")
    with pytest.raises(InputError) as caught:
        read_rows(path, IRIS)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert message.endswith("sepal_length, petals") and "note" not in message and "colour" not in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("plant,sepal_length,petals,wild\np1,5.1,3,true\np2,wide,3,true\n", r":3: field 'sepal_length' is 'wide'"),
        ("plant,sepal_length,petals,wild\np1,5.1,3.5,true\n", r":2: field 'petals' is '3.5', not int"),
        ("plant,sepal_length,petals,wild\np1,5.1,3,maybe\n", r":2: field 'wild' is 'maybe', not a boolean"),
        ("plant,sepal_length,petals,wild\np1,,3,true\n", r":2: .*lacks sepal_length"),
        ('{"plant": "p1", "sepal_length": 5.1, "petals": 3, "wild": true}\n{"plant": "p2"}\n', r":2: .*lacks"),
        ('{"plant": "p1", "sepal_length": "5.1", "petals": 3, "wild": true}\n', r":1: field 'sepal_length' is str"),
        ('{"plant": "p1"\n', r":1: not JSON"),
        ('{"plant": "p1", "sepal_length": 5.1, "petals": 3, "wild": true}\n[1]\n', r":2: a JSON line must be"),
    ],
    ids=["csv-bad-number", "csv-fraction-for-int", "csv-bad-boolean", "csv-empty-required", "jsonl-missing",
         "jsonl-string-for-double", "jsonl-not-json", "jsonl-not-object"],
)  # fmt: skip
def test_a_bad_row_names_its_line_and_field(tmp_path: Path, text: str, match: str) -> None:
    """A row that does not fit the schema raises InputError with ``path:line`` and the field."""
    with pytest.raises(InputError, match=match):
        read_rows(write(tmp_path, text), IRIS)


def test_a_header_without_rows_is_empty_input(tmp_path: Path) -> None:
    """A CSV with its header but no data rows is EmptyInputError."""
    with pytest.raises(EmptyInputError, match="holds no rows"):
        read_rows(write(tmp_path, "plant,sepal_length,petals,wild\n"), IRIS)


@pytest.mark.parametrize("text", ["", "\n\n"], ids=["empty", "blank"])
def test_an_empty_file_is_empty_input(tmp_path: Path, text: str) -> None:
    """A file with nothing in it says it holds no rows, not that its (absent) header lacks every field."""
    with pytest.raises(EmptyInputError):
        read_rows(write(tmp_path, text), IRIS)


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    """A missing path is an InputError naming it, not an OSError."""
    with pytest.raises(InputError, match=r"cannot read data file .*absent\.csv"):
        read_rows(tmp_path / "absent.csv", IRIS)


def test_read_records_ids_from_the_id_field_else_the_row_index(tmp_path: Path) -> None:
    """Records take the schema's id field; a schema without one numbers rows from 0; ts is the one given."""
    csv = "plant,sepal_length,petals,wild\np1,5.1,3,true\np2,4.9,5,false\n"
    path = write(tmp_path, csv)
    assert [(r.id, r.ts, r.data_type) for r in read_records(path, IRIS, ts=99)] == [
        ("p1", 99, "iris"),
        ("p2", 99, "iris"),
    ]
    plain = DataTypeSchema.parse(
        {"type": "record", "name": "plain", "fields": [{"name": "sepal_length", "type": "double"}]}
    )
    records = read_records(path, plain)
    assert [(r.id, r.values) for r in records] == [("0", {"sepal_length": 5.1}), ("1", {"sepal_length": 4.9})]


def test_read_records_takes_event_time_from_the_timestamp_field(tmp_path: Path) -> None:
    """A schema naming a timestamp field dates each record by it."""
    timed = DataTypeSchema.parse(
        {
            "type": "record",
            "name": "timed",
            "modelserving.timestamp": "at",
            "fields": [{"name": "at", "type": "long"}, {"name": "x", "type": "double"}],
        }
    )
    records = read_records(write(tmp_path, "at,x\n1700000000000,1.5\n1700000000500,2.5\n"), timed, ts=1)
    assert [(r.ts, r.values["x"]) for r in records] == [(1_700_000_000_000, 1.5), (1_700_000_000_500, 2.5)]


def test_a_csv_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Spreadsheets save UTF-8 CSVs with a BOM; the first header name must still match."""
    path = tmp_path / "excel.csv"
    path.write_bytes("plant,sepal_length,petals,wild\np1,5.1,3,true\n".encode("utf-8-sig"))
    try:
        rows = read_rows(path, IRIS)
    except InputError as exc:
        pytest.fail(f"BOM broke the header: {exc}")
    assert rows[0]["plant"] == "p1"


def test_a_scalar_in_an_array_column_is_an_input_error(tmp_path: Path) -> None:
    """An array cell holding ``5`` is refused as bad input naming the field, not a TypeError."""
    arrays = DataTypeSchema.parse(
        {
            "type": "record",
            "name": "arrays",
            "fields": [{"name": "v", "type": {"type": "array", "items": "double"}, "modelserving.length": 2}],
        }
    )
    with pytest.raises(InputError, match="'v'"):
        read_rows(write(tmp_path, "v\n5\n"), arrays)


def test_a_json_line_nested_too_deep_is_an_input_error_naming_its_line(tmp_path):
    path = write(tmp_path, '{"id": 1}\n' + "[" * 100_000 + "\n", "deep.jsonl")
    with pytest.raises(InputError, match=r"deep.jsonl:2: not JSON"):
        read_rows(path, IRIS)
