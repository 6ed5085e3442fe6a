"""``bench-models``: records/s per model, one record per call against one batch, each PMML once per engine.

Subjects are the shipped reference models on the wine data, named model
files, or a directory of exports (``scripts/export_sklearn_models.py all DIR``):
one sub-directory per export holding ``model.pmml`` and the ``rows.json`` it
was trained on, whose data type is inferred from the rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.core.model import Model
from serving.errors import InputError, ModelLoadError, ServingError
from serving.formats import descriptor_from_path, load_model
from serving.formats.artifacts import resolve_artifact
from serving.formats.registry import detect_format
from serving.records import wine
from serving.records.features import feature_matrix
from serving.records.schema import Column, DataTypeSchema
from serving.records.wire import DataRecord, check_values

#: The PMML engines measured; the compiled one is compared with pypmml.
PMML_ENGINES = ("numpy", "pypmml")


@dataclass(frozen=True)
class Subject:
    """A model to measure, the rows it scores, and the data type's columns (None: wine)."""

    name: str
    path: Path
    model_type: str
    data: np.ndarray
    columns: tuple[Column, ...] | None = None
    data_type: str = wine.DATA_TYPE


@dataclass(frozen=True)
class Measurement:
    """One subject on one engine (None: not PMML): rates, or ``refused`` with the reason it did not run."""

    subject: Subject
    engine: str | None
    type_name: str = ""
    single: float = 0.0
    batched: float = 0.0
    refused: str = ""


def reference_subjects(data: np.ndarray, specs: list[tuple[Path, str]] | None = None) -> list[Subject]:
    """The shipped reference models (or ``specs``) on the wine ``data``, PMML last (its JVM slows the others)."""
    if specs is None:
        models = wine.reference_dir() / "models"
        specs = [(path, fmt) for path in sorted(models.iterdir()) if (fmt := detect_format(path))]
    return sorted((Subject(p.name, p, fmt, data) for p, fmt in specs), key=lambda s: s.model_type == "pmml")


def export_subjects(directory: Path) -> list[Subject]:
    """One subject per export under ``directory`` (``KIND/model.pmml`` with ``KIND/rows.json``).

    Raises:
        InputError: the directory holds no export, or an export's rows are unreadable.
    """
    subjects = []
    for pmml in sorted(Path(directory).glob("*/model.pmml")):
        try:
            rows = json.loads((pmml.parent / "rows.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"export {pmml.parent.name}: cannot read rows.json: {exc}") from exc
        schema = schema_of_rows(pmml.parent.name, rows)
        records = [DataRecord(str(i), schema.data_type, 0, check_values(r, schema)) for i, r in enumerate(rows)]
        matrix = feature_matrix(records, schema)
        subjects.append(Subject(pmml.parent.name, pmml, "pmml", matrix, schema.columns, schema.data_type))
    if not subjects:
        raise InputError(f"{directory} holds no exports (KIND/model.pmml with KIND/rows.json)")
    return subjects


def schema_of_rows(name: str, rows: list[dict]) -> DataTypeSchema:
    """A data-type schema for JSON ``rows``: strings stay strings, numbers are doubles; nulls make a field nullable."""
    data_type = "".join(c if c.isalnum() else "_" for c in name)
    fields = []
    for key in rows[0]:
        values = [row.get(key) for row in rows]
        kind = "string" if any(isinstance(v, str) for v in values) else "double"
        fields.append({"name": key, "type": ["null", kind] if any(v is None for v in values) else kind})
    return DataTypeSchema.parse({"type": "record", "name": data_type, "fields": fields})


def runs(subjects: list[Subject]) -> Iterator[tuple[Subject, str | None]]:
    """Every (subject, engine) to measure: non-PMML first, then PMML per engine, pypmml last."""
    yield from ((s, None) for s in subjects if s.model_type != "pmml")
    for engine in PMML_ENGINES:
        yield from ((s, engine) for s in subjects if s.model_type == "pmml")


def measure_all(
    subjects: list[Subject], single: int, repeat: int, progress: Callable[[str], None] = lambda _: None
) -> list[Measurement]:
    """Measure every run; a model an engine refuses (not compilable, unreliable answer) is a refused row."""
    results = []
    for subject, engine in runs(subjects):
        progress(f"benchmarking {subject.name}" + (f" ({engine})" if engine else "") + " ...")
        try:
            model = load_for_bench(subject, engine)
        except ModelLoadError as exc:
            if engine is None:
                raise
            results.append(Measurement(subject, engine, refused=exc.reason))
            progress(f"  {subject.name} ({engine}): refused, {exc}")
            continue
        try:
            rate_single, rate_batched = measure(model, subject.data, single, repeat)
            results.append(Measurement(subject, engine, model.type_name, rate_single, rate_batched))
        except ServingError as exc:
            results.append(Measurement(subject, engine, model.type_name, refused=exc.reason))
            progress(f"  {subject.name} ({engine}): refused, {exc}")
        finally:
            model.close()
    return results


def load_for_bench(subject: Subject, engine: str | None) -> Model:
    """The subject's model; a PMML one on the given engine (see ``serving.formats.pmml.model``)."""
    descriptor = descriptor_from_path(subject.path, subject.model_type, data_type=subject.data_type)
    if engine is None:
        return load_model(descriptor, columns=subject.columns)
    from serving.formats.pmml.model import PmmlModel

    return PmmlModel(descriptor, resolve_artifact(descriptor), subject.columns, engine=engine)


def measure(model: Model, data: np.ndarray, single: int, repeat: int) -> tuple[float, float]:
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
