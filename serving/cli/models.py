"""``modelserving score`` and ``modelserving bench-models``: models without Flink."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from serving.core.model import Model
from serving.errors import ConfigError, ModelLoadError
from serving.formats import descriptor_from_path, load_model
from serving.formats.artifacts import resolve_artifact
from serving.formats.registry import detect_format, format_names, parse_format
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
        description="Benchmark: score the wine data one record per call and in one batch, per model. "
        "PMML models are measured under both engines, compiled NumPy and pypmml.",
    )
    bench.add_argument("--model", action="append", default=[], metavar="PATH:TYPE", help="default: reference models")
    bench.add_argument("--data", type=Path, default=None, help="wine CSV (default: the shipped reference data)")
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


def reference_models() -> list[tuple[Path, str]]:
    """The shipped reference models with their formats, PMML last (its JVM would slow the others)."""
    models = wine.reference_dir() / "models"
    found = [(path, fmt) for path in sorted(models.iterdir()) if (fmt := detect_format(path))]
    return sorted(found, key=lambda item: item[1] == "pmml")


#: The PMML engines bench-models measures; "vs pypmml" compares the compiled one with pypmml.
PMML_ENGINES = ("numpy", "pypmml")


def run_bench_models(args: argparse.Namespace) -> int:
    """Print records/s per model, one record per call against one batch; PMML once per engine.

    The pypmml runs come last: its JVM keeps compiling and collecting in the
    background, which would slow whatever ran after it.
    """
    from rich.console import Console
    from rich.table import Table

    data = wine.read_wine_csv(args.data or wine.reference_csv()).features
    specs = [parse_model_spec(s) for s in args.model] or reference_models()
    console = Console(stderr=True)
    runs = [(path, model_type, None) for path, model_type in specs if model_type != "pmml"]
    runs += [
        (path, model_type, engine) for engine in PMML_ENGINES for path, model_type in specs if model_type == "pmml"
    ]
    rates: dict[tuple[Path, str | None], tuple[float, float]] = {}
    type_names: dict[Path, str] = {}
    for path, model_type, engine in runs:
        console.print(f"benchmarking {path.name}" + (f" ({engine})" if engine else "") + " ...")
        try:
            model = _load_for_bench(path, model_type, engine)
        except ModelLoadError as exc:
            if engine != "numpy":
                raise
            console.print(f"  {path.name}: no compiled engine, {exc}")
            continue
        try:
            rates[path, engine] = _measure(model, data, args.single, args.repeat)
            type_names[path] = model.type_name
        finally:
            model.close()

    table = Table(title=f"Scoring speed, {len(data)} wine rows, one process")
    columns = ("model", "type", "engine", "single rec/s", "batched rec/s", "speed-up", "vs pypmml single/batched")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "type", "engine") else "right")
    for path, model_type in specs:
        for engine in PMML_ENGINES if model_type == "pmml" else (None,):
            if (path, engine) not in rates:
                continue
            single_rate, batched_rate = rates[path, engine]
            versus = ""
            if engine == "numpy" and (path, "pypmml") in rates:
                base_single, base_batched = rates[path, "pypmml"]
                versus = f"{single_rate / base_single:,.1f}x / {batched_rate / base_batched:,.1f}x"
            table.add_row(
                path.name,
                type_names[path],
                engine or "",
                f"{single_rate:,.0f}",
                f"{batched_rate:,.0f}",
                f"{batched_rate / single_rate:,.1f}x",
                versus,
            )
    Console().print(table)
    return 0


def _load_for_bench(path: Path, model_type: str, engine: str | None) -> Model:
    """The model at ``path``; a PMML one on the given engine (see ``serving.formats.pmml.model``)."""
    descriptor = descriptor_from_path(path, model_type)
    if engine is None:
        return load_model(descriptor)
    from serving.formats.pmml.model import PmmlModel

    return PmmlModel(descriptor, resolve_artifact(descriptor), engine=engine)


def _measure(model: Model, data, single: int, repeat: int) -> tuple[float, float]:
    """(records/s scoring one record per call, records/s scoring the whole data per call)."""
    model.score_batch(data[:10])  # warm-up: first calls compile or JIT
    single_n = min(single, len(data))
    started = time.perf_counter()
    for i in range(single_n):
        model.score_batch(data[i : i + 1])
    single_rate = single_n / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(repeat):
        model.score_batch(data)
    batched_rate = repeat * len(data) / (time.perf_counter() - started)
    return single_rate, batched_rate
