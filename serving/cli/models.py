"""``modelserving score`` and ``modelserving bench-models``: models without Flink."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.errors import ConfigError
from serving.formats import descriptor_from_path, load_model
from serving.formats.registry import format_names, parse_format
from serving.records import wine
from serving.records.features import feature_matrix
from serving.records.files import read_records
from serving.records.schema import DataTypeSchema


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``score`` and ``bench-models``."""
    score = subparsers.add_parser(
        "score",
        help="score a data file with one model file, one JSON line per row",
        description="Score every row of a data file with a model, in input order: the check a data "
        "scientist runs before publishing a model. With --schema the file is a CSV with a header row "
        "naming schema fields (extra columns are ignored) or JSON lines, of that data type; without, a wine CSV.",
    )
    score.add_argument("--model", required=True, type=Path, help="model file, or SavedModel directory")
    score.add_argument("--type", required=True, choices=format_names(), help="model format")
    score.add_argument("--data", required=True, type=Path, help="data file (without --schema: wine, ';', no header)")
    score.add_argument("--schema", type=Path, default=None, metavar="S.avsc", help="the data type's Avro schema")
    score.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="descriptor metadata")
    score.set_defaults(handler=run_score)

    bench = subparsers.add_parser(
        "bench-models",
        help="records/s per model, one record per call against batched",
        description="Benchmark: score the wine data (or each export's rows) one record per call and in one "
        "batch, per model. PMML models are measured under both engines, compiled NumPy and pypmml; an engine "
        "that refuses a model says why.",
    )
    bench.add_argument("--model", action="append", default=[], metavar="PATH:TYPE", help="default: reference models")
    bench.add_argument("--data", type=Path, default=None, help="wine CSV (default: the shipped reference data)")
    bench.add_argument(
        "--exports", type=Path, default=None, metavar="DIR",
        help="instead: every export in DIR (scripts/export_sklearn_models.py all DIR), on its own rows",
    )  # fmt: skip
    bench.add_argument("--single", type=int, default=300, help="records scored one per call (default 300)")
    bench.add_argument("--repeat", type=int, default=3, help="batched passes over the data (default 3)")
    bench.set_defaults(handler=run_bench_models)


def parse_metadata(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` into a dict; a malformed item is a ConfigError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--metadata takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def read_schema(path: Path) -> DataTypeSchema:
    """The data-type schema in an ``.avsc`` file.

    Raises:
        SchemaError: the file cannot be read, or holds no servable schema.
    """
    from serving.records.schema import SchemaError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from exc
    return DataTypeSchema.parse(text)


def parse_model_spec(spec: str) -> tuple[Path, str]:
    """``PATH:TYPE`` into a path and a format name."""
    path, sep, type_name = spec.rpartition(":")
    if not sep or not path:
        raise ConfigError(f"model spec must be PATH:TYPE, got {spec!r}")
    return Path(path), parse_format(type_name)


def run_score(args: argparse.Namespace) -> int:
    """Score ``--data`` with ``--model``; JSON lines on stdout."""
    metadata = parse_metadata(args.metadata)
    if args.schema is None:
        features = wine.read_wine_csv(args.data).features
        model = load_model(descriptor_from_path(args.model, args.type, metadata=metadata))
    else:
        schema = read_schema(args.schema)
        features = feature_matrix(read_records(args.data, schema), schema)
        descriptor = descriptor_from_path(args.model, args.type, data_type=schema.data_type, metadata=metadata)
        model = load_model(descriptor, columns=schema.columns)
    try:
        scores = model.score_batch(features)
    finally:
        model.close()
    out = sys.stdout
    for i in range(len(scores)):
        line = {"row": i, "score": float(scores.scores[i])}
        if scores.probabilities is not None:
            line["probabilities"] = [float(p) for p in scores.probabilities[i]]
            line["labels"] = list(scores.labels)
        out.write(json.dumps(line) + "\n")
    return 0


def run_bench_models(args: argparse.Namespace) -> int:
    """Print records/s per model, one record per call against one batch; PMML once per engine."""
    from rich.console import Console
    from rich.table import Table

    from serving.bench.models import export_subjects, measure_all, reference_subjects

    if args.exports is not None:
        subjects = export_subjects(args.exports)
        title = f"Scoring speed, exports in {args.exports}, one process"
    else:
        data = wine.read_wine_csv(args.data or wine.reference_csv()).features
        specs = [parse_model_spec(s) for s in args.model] or None
        subjects = reference_subjects(data, specs)
        title = f"Scoring speed, {len(data)} wine rows, one process"
    console = Console(stderr=True)
    results = measure_all(subjects, args.single, args.repeat, console.print)

    table = Table(title=title)
    columns = (
        "model",
        "type",
        "engine",
        "rows",
        "single rec/s",
        "batched rec/s",
        "speed-up",
        "vs pypmml single/batched",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "type", "engine") else "right")
    by_run = {(m.subject.name, m.engine): m for m in results}
    for m in results:
        if m.refused:
            kind = m.type_name or m.subject.model_type.upper()
            table.add_row(m.subject.name, kind, m.engine or "", str(len(m.subject.data)), "-", "-", "",
                          f"refused: {m.refused}")  # fmt: skip
            continue
        versus = ""
        base = by_run.get((m.subject.name, "pypmml"))
        if m.engine == "numpy" and base is not None and not base.refused:
            versus = f"{m.single / base.single:,.1f}x / {m.batched / base.batched:,.1f}x"
        table.add_row(m.subject.name, m.type_name, m.engine or "", str(len(m.subject.data)), f"{m.single:,.0f}",
                      f"{m.batched:,.0f}", f"{m.batched / m.single:,.1f}x", versus)  # fmt: skip
    Console().print(table)
    return 0
