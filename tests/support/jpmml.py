"""JPMML-Evaluator, the reference PMML implementation, as the tests' oracle (one in-process JVM per session).

The ``jpmml`` fixture (session-scoped; registered as a plugin from
tests/conftest.py) gives an :class:`Oracle`. Its JVM (JPype) starts at the
first evaluation and is shut down when the session ends; JPype cannot start a
second JVM in the same process, so nothing else may shut it down.

Contract of :meth:`Oracle.evaluate`: for each input row (a ``{PMML input
field: value}`` dict; ``None`` or NaN is a missing value) one dict of
JPMML's result fields: the target field (the predicted value of a regressor,
the winning label of a classifier, as JPMML decodes it: an ``int`` for integer
labels) and every declared ``OutputField`` (``probability(<label>)`` and so
on). A row JPMML cannot evaluate raises :class:`OracleError`. Evaluators are
built (and verified) once per PMML file (path, size and mtime). :meth:`Oracle.answers` gives the same
as arrays, with probabilities keyed by label string, which is what tests
compare served scores with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest


class OracleError(AssertionError):
    """JPMML-Evaluator refused a document or a row (it is the reference: the PMML or the rows are wrong)."""


@dataclass(frozen=True)
class Description:
    """What a PMML document computes, as JPMML reads it."""

    function: str  #: "classification" or "regression" (JPMML's MiningFunction)
    inputs: tuple[str, ...]  #: the input fields, in the document's order
    target: str  #: the (single) target field
    probability_fields: dict[str, str]  #: label -> the OutputField holding its probability


@dataclass(frozen=True)
class Answers:
    """JPMML's results for N rows, as arrays."""

    description: Description
    predicted: np.ndarray  #: float64 [N] for a regressor; label strings (object) [N] for a classifier
    probabilities: dict[str, np.ndarray]  #: label -> float64 [N]; empty when the PMML declares none


class Oracle:
    """Evaluates PMML documents with JPMML-Evaluator; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._evaluators: dict[tuple[Path, int, int], Any] = {}
        self._descriptions: dict[tuple[Path, int, int], Description] = {}

    @staticmethod
    def _key(path: Path) -> tuple[Path, int, int]:
        # A file rewritten in place (same path, new document) gets a new evaluator.
        path = Path(path).resolve()
        stat = path.stat()
        return path, stat.st_mtime_ns, stat.st_size

    def _evaluator(self, path: Path) -> Any:
        key = self._key(path)
        if key not in self._evaluators:
            from jpmml_evaluator import make_evaluator

            try:
                self._evaluators[key] = make_evaluator(str(key[0]), backend="jpype").verify()
            except Exception as exc:  # JPMML's JavaError: the document itself is refused
                raise OracleError(f"JPMML-Evaluator refuses {key[0].name}: {exc}") from exc
        return self._evaluators[key]

    def describe(self, path: Path) -> Description:
        """The function, inputs, target and probability outputs of the document at ``path``."""
        key = self._key(path)
        if key not in self._descriptions:
            evaluator = self._evaluator(path)
            targets = [f.getName() for f in evaluator.getTargetFields()]
            if len(targets) != 1:
                raise OracleError(f"{key[0].name}: expected one target field, JPMML finds {targets}")
            probabilities = {}
            for field in evaluator.getOutputFields():
                declared = field.javaModelField.getField()
                if str(declared.getResultFeature().value()) == "probability" and declared.getValue() is not None:
                    probabilities[str(declared.getValue())] = field.getName()
            self._descriptions[key] = Description(
                function=str(evaluator.javaEvaluator.getMiningFunction().value()),
                inputs=tuple(f.getName() for f in evaluator.getInputFields()),
                target=targets[0],
                probability_fields=probabilities,
            )
        return self._descriptions[key]

    def evaluate(self, path: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """JPMML's result fields for each row (see the module docstring), in one ``evaluateAll``."""
        import pandas as pd

        evaluator = self._evaluator(path)
        inputs = self.describe(path).inputs
        # Only the model's inputs, every one present (absent means missing), as objects so ints stay ints.
        frame = pd.DataFrame([{name: row.get(name) for name in inputs} for row in rows], columns=list(inputs))
        try:
            results = evaluator.evaluateAll(frame)
        except Exception as exc:
            raise OracleError(f"JPMML-Evaluator cannot evaluate {Path(path).name}: {exc}") from exc
        if "errors" in results and results["errors"].notna().any():
            first = results["errors"].dropna().iloc[0]
            raise OracleError(f"JPMML-Evaluator fails rows of {Path(path).name}: {first}")
        if len(results) != len(rows):  # evaluateAll drops the rows it fails on
            raise OracleError(f"JPMML-Evaluator answered {len(results)} of {len(rows)} rows of {Path(path).name}")
        return results.drop(columns=["errors"], errors="ignore").to_dict(orient="records")

    def answers(self, path: Path, rows: Sequence[dict[str, Any]]) -> Answers:
        """:meth:`evaluate` as arrays: predicted values or label strings, and probabilities by label."""
        description = self.describe(path)
        results = self.evaluate(path, rows)
        target = [r[description.target] for r in results]
        if description.function == "regression":
            predicted = np.asarray([np.nan if v is None else v for v in target], dtype=np.float64)
        else:
            predicted = np.asarray([None if v is None else str(v) for v in target], dtype=object)
        probabilities = {
            label: np.asarray([np.nan if r[name] is None else r[name] for r in results], dtype=np.float64)
            for label, name in description.probability_fields.items()
        }
        return Answers(description, predicted, probabilities)

    def shutdown(self) -> None:
        """Drop the evaluators and stop the JVM, if one was started (once per process)."""
        self._evaluators.clear()
        import jpype

        if jpype.isJVMStarted():
            jpype.shutdownJVM()


@pytest.fixture(scope="session")
def jpmml() -> Iterator[Oracle]:
    """The session's JPMML-Evaluator oracle; its JVM is shut down when the session ends."""
    oracle = Oracle()
    yield oracle
    oracle.shutdown()
