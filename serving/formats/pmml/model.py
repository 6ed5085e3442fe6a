"""PMML: compiled to NumPy when possible, else evaluated by ``pypmml`` (PMML4S in a JVM, reached through py4j).

The compiled engine (:mod:`serving.formats.pmml.compiler`) reproduces
pypmml's results for the model types it knows and refuses everything else, so
every PMML scores the same whichever engine serves it; pypmml remains the
fallback and the oracle the compiled engine is tested against.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from serving.core.model import Model, ModelDescriptor, RawPrediction, classify
from serving.errors import (
    ConfigError,
    CorruptModelError,
    ModelLoadError,
    ModelSchemaError,
    UnreliableEvaluatorError,
)
from serving.formats.pmml.compiler import NotCompilable, compile_pmml, label_key
from serving.logs import get_logger
from serving.settings import environment

if TYPE_CHECKING:
    from serving.records.schema import Column

log = get_logger("formats.pmml")

#: Environment variable choosing the engine: ``auto`` (default: numpy if compilable, else pypmml),
#: ``numpy`` (compiled only; a model it cannot compile fails to load) or ``pypmml``.
#: The variable that chooses the engine (read through ``serving.settings.environment``).
ENGINE_ENV = "MODELSERVING_PMML_ENGINE"
ENGINES = ("auto", "numpy", "pypmml")


class PmmlModel(Model):
    """A PMML model whose input fields are matched to the record's features by name.

    Names match ignoring case and separators, so ``free sulfur dioxide`` in the
    PMML meets ``free_sulfur_dioxide`` in a record. A PMML field the record lacks
    is a :class:`ModelSchemaError` at load time, not a NaN at scoring time.

    Result rule: regression gives the predicted value; classification gives the
    evaluator's predicted label (``predicted_<target>``, or a declared
    ``predictedValue`` output), and only when neither exists the label with the
    highest probability. Probabilities the evaluator leaves out (NaN) are 0.

    Engine: ``engine`` is ``"numpy"`` when the document compiled, else
    ``"pypmml"`` (``engine_note`` then says why). Both give JPMML-Evaluator's
    results (the reference implementation, the tests' oracle). Where pypmml is
    known to go wrong it is refused, not served: a classifier whose output has
    NaN class probabilities while the others do not add up to 1, or a
    predicted label that is not the most probable one, raises
    :class:`UnreliableEvaluatorError`, so admission's
    probe rejects the model and the previous one keeps serving;
    choose with the ``engine`` argument or ``$MODELSERVING_PMML_ENGINE``
    (``auto``, ``numpy``, ``pypmml``). pypmml, and with it the JVM, is only
    started for the pypmml engine.
    """

    format_name = "pmml"
    suffixes = (".pmml",)

    def __init__(
        self,
        descriptor: ModelDescriptor,
        artifact: bytes,
        columns: Sequence[Column] | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(descriptor, artifact, columns)
        requested = (engine or environment().pmml_engine or "auto").strip().lower()
        if requested not in ENGINES:
            raise ConfigError(f"PMML engine must be one of {', '.join(ENGINES)}, got {requested!r}")
        try:
            text = artifact.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptModelError(f"model {descriptor.name!r}: PMML is not UTF-8 text") from exc
        if "<PMML" not in text[:4096]:
            raise CorruptModelError(f"model {descriptor.name!r}: not a PMML document")
        self._pmml = None
        self._compiled = None
        self.engine_note = ""
        if requested != "pypmml":
            try:
                self._compiled = compile_pmml(artifact)
            except NotCompilable as exc:
                if requested == "numpy":
                    raise ModelLoadError(f"model {descriptor.name!r}: PMML cannot be compiled: {exc}") from exc
                self.engine_note = f"not compilable: {exc}"
        else:
            self.engine_note = "requested"
        if self._compiled is not None:
            self.engine = "numpy"
            self.function = self._compiled.function
            input_names = self._compiled.input_names
        else:
            self.engine = "pypmml"
            # Imported here: pypmml starts a JVM, which the compiled engine never needs.
            from pypmml import Model as PypmmlModel

            self._pmml = PypmmlModel.fromString(text)
            # Supplement output adds predicted_<target> even when the PMML's Output omits it.
            self._pmml.setSupplementOutput(True)
            self.function = self._pmml.functionName
            input_names = self._pmml.inputNames
        # Each input field by name, with the type its DataDictionary declares: strings and
        # booleans reach the evaluator as values (1.0 for True gives wrong answers, see the notes).
        declared, values = _declared_types(text)
        kinds = [_KIND_OF_TYPE.get(declared.get(name, "double"), "number") for name in input_names]
        try:
            self.bind(list(input_names), kinds=kinds)
        except ModelSchemaError:
            self.close()
            raise
        self.input_names = list(input_names)
        self.probe_values = {name: values[name] for name in input_names if name in values}
        if self._compiled is not None:
            self._labels = self._compiled.labels
        else:
            self._predicted_column, self._probability_columns, self._labels = self._outputs()
            self._self_check(declared, values)
        log.info(
            "pmml engine",
            extra={"model": descriptor.name, "version": descriptor.version, "engine": self.engine}
            | ({"why": self.engine_note} if self.engine_note else {}),
        )

    def _self_check(self, declared: dict[str, str], values: dict[str, str]) -> None:
        """Score one probe row under pypmml; an answer that contradicts itself refuses the model at load.

        The row takes each field's first valid category, else 0: pypmml's known
        fault (an ensemble's probabilities read by position) shows on any row.
        """
        if self.function != "classification":
            return
        row = [values.get(name, "") if declared.get(name) == "string" else 0.0 for name in self.input_names]
        try:
            output = self._pypmml_predict([row])
        except Exception:  # the probe row itself is refused: scoring will tell, row by row
            return
        try:
            self.interpret(output)
        except UnreliableEvaluatorError:
            self.close()
            raise

    def _outputs(self) -> tuple[str | None, list[str], tuple[str, ...]]:
        predicted = None
        probabilities: list[tuple[str, str]] = []
        for field in self._pmml.outputFields:
            if field.feature == "predictedValue" and predicted is None:
                predicted = field.name
            elif field.feature == "probability" and field.value is not None:
                probabilities.append((str(field.value), field.name))
        if predicted is None:
            predicted = f"predicted_{self._pmml.targetName}"
        probabilities.sort(key=lambda pair: _label_key(pair[0]))
        return predicted, [name for _, name in probabilities], tuple(label for label, _ in probabilities)

    def record_dict(self, row: np.ndarray) -> dict[str, object]:
        """One feature row as the ``{pmml field: value}`` dict pypmml scores singly."""
        inputs = self.model_inputs(np.asarray(row).reshape(1, -1))[0]
        return {name: value if self.categorical else float(value) for name, value in zip(self.input_names, inputs)}

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        if self._compiled is not None:
            return self._compiled.predict(inputs)
        return self.interpret(self._pypmml_predict(_plain(inputs)))

    def _pypmml_predict(self, rows: list[list[object]]) -> pd.DataFrame:
        """The output frame pypmml gives for ``rows`` of plain values in ``input_names`` order."""
        # pypmml's own DataFrame path goes through pandas JSON, which keeps only 10
        # digits of the inputs and parses outputs imprecisely; Python's json is exact.
        request = json.dumps({"columns": self.input_names, "data": rows})
        response = json.loads(self._pmml.call("predict", request))
        return pd.DataFrame(response["data"], columns=response["columns"])

    def interpret(self, output: pd.DataFrame) -> RawPrediction:
        """Turn pypmml's output frame into scores by the result rule."""
        if self.function == "regression":
            return RawPrediction(scores=output[self._predicted_column].to_numpy(dtype=np.float64))
        probabilities = (
            output[self._probability_columns].to_numpy(dtype=np.float64) if self._probability_columns else None
        )
        if probabilities is not None:
            # NaN is a class the answer leaves out, 0 by the reference evaluator, unless the classes it
            # gives do not add up to 1: then NaN stands for mass pypmml lost (its positional ensemble).
            unknown = np.isnan(probabilities)
            lost = np.abs(np.nansum(probabilities, axis=1) - 1.0) > 1e-6
            if (unknown.any(axis=1) & ~unknown.all(axis=1) & lost).any():  # no answer at all: a missing row
                raise UnreliableEvaluatorError(
                    f"model {self.name}:{self.version}: pypmml gave NaN class probabilities, which the reference "
                    "evaluator does not; refusing its answer (publish a model the NumPy engine compiles)"
                )
            probabilities = np.where(unknown, 0.0, probabilities)
        if self._predicted_column and self._predicted_column in output:
            predicted = output[self._predicted_column]
            index = {label: i for i, label in enumerate(self._labels)}
            positions = np.asarray([index.get(_label_text(label), -1) for label in predicted])
            if probabilities is not None and probabilities.shape[1]:
                best = probabilities.max(axis=1)
                chosen = probabilities[np.arange(len(positions)), np.maximum(positions, 0)]
                answered = predicted.notna().to_numpy()
                if (answered & ((positions < 0) | (chosen < best))).any():
                    raise UnreliableEvaluatorError(
                        f"model {self.name}:{self.version}: pypmml predicted a label that is not the most "
                        "probable one; refusing its answer"
                    )
            if _all_numeric(self._labels):
                scores = pd.to_numeric(predicted, errors="coerce").to_numpy(dtype=np.float64)
            else:  # the result rule: a label that is no number scores as its index in labels
                scores = np.where(positions >= 0, positions, np.nan).astype(np.float64)
            return RawPrediction(scores=scores, probabilities=probabilities, labels=self._labels)
        if probabilities is None:
            raise CorruptModelError(f"model {self.name!r}: PMML classifier exposes neither a label nor probabilities")
        return classify(probabilities, self._labels)

    def close(self) -> None:
        """Release the JVM-side model, if pypmml serves this one.

        Never ``pypmml.Model.close()``: it is a classmethod that shuts down the
        process's one JVM gateway under every other PMML model, and the JVM
        itself stays behind (one leaked JVM per close). Dropping the reference
        lets pypmml detach the Java object.
        """
        self._pmml = None


#: The label order of probability columns; shared with the compiled engine so both order alike.
_label_key = label_key


#: PMML DataField types and the kind of input they are.
_KIND_OF_TYPE = {"string": "string", "boolean": "boolean"}


def _declared_types(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Each DataDictionary field's ``dataType``, and the first valid ``Value`` of the fields that list them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {}, {}
    types: dict[str, str] = {}
    first_values: dict[str, str] = {}
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "DataField":
            continue
        name = element.get("name", "")
        types[name] = element.get("dataType", "")
        valid = [
            v.get("value")
            for v in element
            if v.tag.rsplit("}", 1)[-1] == "Value" and v.get("property", "valid") == "valid" and v.get("value")
        ]
        if valid and types[name] == "string":
            first_values[name] = valid[0]
    return types, first_values


def _label_text(label: object) -> str:
    """A predicted label as the probability columns name it (pypmml gives integer labels as 5 or 5.0)."""
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def _plain(inputs: np.ndarray) -> list[list[object]]:
    """Rows of plain Python values (NumPy scalars are not JSON); a missing value (NaN, None) is JSON null."""
    return [[_json_value(value) for value in row] for row in inputs.tolist()]


def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None  # pypmml's parser refuses a bare NaN
    return value


def _all_numeric(labels: tuple[str, ...]) -> bool:
    try:
        [float(label) for label in labels]
    except ValueError:
        return False
    return True
