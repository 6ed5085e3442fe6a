"""Serving a PMML the project's way, and the comparison rules against JPMML-Evaluator and the training library.

The rule (issue 15): a regressor's values equal JPMML's within 1e-9; a
classifier has the same winning label on every row and, when JPMML gives
probabilities, the same labels with probabilities within 1e-9 (matched by
label, not by position). Against the training library the tolerance is looser
(``LIBRARY_TOLERANCE``): the PMML may hold its numbers as floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.core.model import BatchScores
from serving.errors import ModelLoadError, ServingError
from serving.formats import descriptor_from_path
from serving.formats.artifacts import resolve_artifact
from serving.formats.pmml.model import PmmlModel
from serving.records import wine
from serving.records.features import feature_matrix
from serving.records.schema import DataTypeSchema
from serving.records.wire import DataRecord, check_values
from tests.support.jpmml import Answers, Oracle
from tests.support.pmml_exports import Export

#: Served against JPMML-Evaluator.
TOLERANCE = 1e-9
#: Served against scikit-learn / LightGBM / statsmodels themselves.
LIBRARY_TOLERANCE = 1e-6


class Served:
    """One PMML ready to load under any engine: its descriptor, columns and feature matrix, and the rows as dicts."""

    def __init__(self, pmml: Path, rows: list[dict[str, Any]], matrix: np.ndarray, data_type: str, columns) -> None:
        self.pmml = pmml
        self.rows = rows
        self.matrix = matrix
        self.descriptor = descriptor_from_path(pmml, "pmml", data_type=data_type)
        self.columns = columns

    @classmethod
    def wine(cls, pmml: Path, data: wine.WineData) -> Served:
        """A reference wine PMML on the reference rows (the built-in wine schema)."""
        rows = [dict(zip(wine.FEATURE_NAMES, map(float, row))) for row in data.features]
        return cls(pmml, rows, data.features, "wine", None)

    @classmethod
    def export(cls, trained: Export) -> Served:
        """An sklearn2pmml export on its training rows, through a schema made from them (strings stay strings)."""
        schema = DataTypeSchema.parse(trained.avro_schema)
        records = [
            DataRecord(str(i), schema.data_type, 0, check_values(row, schema)) for i, row in enumerate(trained.rows)
        ]
        return cls(trained.pmml, trained.rows, feature_matrix(records, schema), schema.data_type, schema.columns)

    def load(self, engine: str | None) -> PmmlModel:
        """The model under ``engine`` (None: the default choice); raises what loading raises."""
        return PmmlModel(self.descriptor, resolve_artifact(self.descriptor), self.columns, engine=engine)

    def score(self, engine: str | None) -> tuple[str, BatchScores]:
        """``(engine that served, scores of every row)``; the model is closed afterwards."""
        model = self.load(engine)
        try:
            return model.engine, model.score_batch(self.matrix)
        finally:
            model.close()


def winning_labels(scores: BatchScores) -> list[str | None]:
    """Each row's label by the result rule: a numeric label's value, else the label's index in ``labels``."""
    labels = scores.labels
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return [labels[int(s)] if np.isfinite(s) else None for s in scores.scores]
    return [next((lab for lab, v in zip(labels, values) if v == s), repr(float(s))) for s in scores.scores]


def _same_label(got: str | None, want: str | None) -> bool:
    if got == want:
        return True
    try:  # "5" and "5.0" name the same numeric label
        return float(got) == float(want)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _rows_differing(got: Sequence[str | None], want: Sequence[str | None]) -> list[int]:
    return [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not _same_label(g, w)]


def assert_equals_jpmml(scores: BatchScores, answers: Answers, tolerance: float = TOLERANCE) -> None:
    """Fail unless the served scores equal JPMML's answers by the rule in the module docstring."""
    if answers.description.function == "regression":
        np.testing.assert_allclose(scores.scores, answers.predicted, rtol=0, atol=tolerance)
        return
    wrong = _rows_differing(winning_labels(scores), list(answers.predicted))
    assert not wrong, (
        f"{len(wrong)} of {len(scores)} winning labels differ from JPMML's, first row {wrong[0]}: "
        f"served {winning_labels(scores)[wrong[0]]!r}, JPMML {answers.predicted[wrong[0]]!r}"
    )
    if not answers.probabilities:
        return  # JPMML declares no probabilities (an SVM, kNN): the label is all there is to compare
    assert scores.probabilities is not None, (
        f"JPMML gives probabilities of {sorted(answers.probabilities)}, served none"
    )
    assert sorted(scores.labels) == sorted(answers.probabilities), "served labels differ from JPMML's"
    for label, want in answers.probabilities.items():
        got = scores.probabilities[:, scores.labels.index(label)]
        # The project's rule: a probability the evaluator leaves out is 0.
        np.testing.assert_allclose(got, np.nan_to_num(want), rtol=0, atol=tolerance, err_msg=f"probability({label})")


def assert_equals_library(scores: BatchScores, trained: Export, tolerance: float = LIBRARY_TOLERANCE) -> None:
    """Fail unless the served scores equal the training library's predict (and predict_proba, if both have it)."""
    if trained.function == "regression":
        np.testing.assert_allclose(scores.scores, trained.predict, rtol=tolerance, atol=tolerance)
        return
    wrong = _rows_differing(winning_labels(scores), trained.predict)
    assert not wrong, f"{len(wrong)} of {len(scores)} winning labels differ from the library's, first row {wrong[0]}"
    if trained.predict_proba is None or scores.probabilities is None:
        return
    assert sorted(scores.labels) == sorted(trained.classes), "served labels differ from the library's classes"
    order = [scores.labels.index(c) for c in trained.classes]
    np.testing.assert_allclose(scores.probabilities[:, order], trained.predict_proba, rtol=0, atol=tolerance)


def assert_jpmml_equals_library(answers: Answers, trained: Export, tolerance: float = LIBRARY_TOLERANCE) -> None:
    """The test set's own check: JPMML-Evaluator scores the export as the training library does."""
    if trained.function == "regression":
        np.testing.assert_allclose(answers.predicted, trained.predict, rtol=tolerance, atol=tolerance)
        return
    wrong = _rows_differing(list(answers.predicted), trained.predict)
    assert not wrong, f"JPMML differs from the library on {len(wrong)} rows, first row {wrong[0]}"
    if trained.predict_proba is None or not answers.probabilities:
        return
    want = np.asarray(trained.predict_proba)
    for i, label in enumerate(trained.classes):
        np.testing.assert_allclose(answers.probabilities[label], want[:, i], rtol=0, atol=tolerance, err_msg=label)


def assert_pypmml_refused_or_equal(served: Served, oracle: Oracle) -> None:
    """Under ``engine="pypmml"`` the model is refused at load (ModelLoadError), or it scores as JPMML does.

    pypmml stays the fallback, but an answer it gets wrong must never be served:
    a refusal that comes only while scoring, after the model was admitted, fails.
    """
    try:
        model = served.load("pypmml")
    except ModelLoadError as exc:
        print(f"{served.pmml.name}: refused under pypmml at load: {exc}")
        return
    try:
        assert model.engine == "pypmml"
        try:
            scores = model.score_batch(served.matrix)
        except ServingError as exc:
            raise AssertionError(f"admitted under pypmml, then failed while scoring: {exc}") from exc
    finally:
        model.close()
    assert_equals_jpmml(scores, oracle.answers(served.pmml, served.rows))
