"""PMML: compiled to NumPy when possible, else evaluated by ``pypmml`` (PMML4S in a JVM, reached through py4j).

The compiled engine (:mod:`serving.formats.pmml.compiler`) reproduces
pypmml's results for the model types it knows and refuses everything else, so
every PMML scores the same whichever engine serves it; pypmml remains the
fallback and the oracle the compiled engine is tested against.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from serving.core.model import Model, ModelDescriptor, RawPrediction, classify
from serving.errors import ConfigError, CorruptModelError, ModelLoadError, ModelSchemaError
from serving.formats.common import feature_names
from serving.formats.pmml.compiler import NotCompilable, compile_pmml, label_key
from serving.logs import get_logger
from serving.settings import environment

log = get_logger("formats.pmml")

#: Environment variable choosing the engine: ``auto`` (default: numpy if compilable, else pypmml),
#: ``numpy`` (compiled only; a model it cannot compile fails to load) or ``pypmml``.
#: The variable that chooses the engine (read through ``serving.settings.environment``).
ENGINE_ENV = "MODELSERVING_PMML_ENGINE"
ENGINES = ("auto", "numpy", "pypmml")


def normalise_field(name: str) -> str:
    """Field-name key that ignores case, spaces, underscores and dashes."""
    return re.sub(r"[\s_\-]+", "", name).lower()


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
    ``"pypmml"`` (``engine_note`` then says why). Both give the same results;
    choose with the ``engine`` argument or ``$MODELSERVING_PMML_ENGINE``
    (``auto``, ``numpy``, ``pypmml``). pypmml, and with it the JVM, is only
    started for the pypmml engine.
    """

    format_name = "pmml"
    suffixes = (".pmml",)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, engine: str | None = None) -> None:
        super().__init__(descriptor, artifact)
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
        record_fields = feature_names(descriptor)
        by_key = {normalise_field(name): i for i, name in enumerate(record_fields)}
        missing = [name for name in input_names if normalise_field(name) not in by_key]
        if missing:
            self.close()
            raise ModelSchemaError(
                f"model {descriptor.name!r}: PMML needs fields the {descriptor.data_type} record lacks: "
                + ", ".join(missing)
            )
        self.input_names: list[str] = list(input_names)
        self._columns = [by_key[normalise_field(name)] for name in self.input_names]
        self.n_features = len(record_fields)
        if self._compiled is not None:
            self._labels = self._compiled.labels
        else:
            self._predicted_column, self._probability_columns, self._labels = self._outputs()
        log.info(
            "pmml engine",
            extra={"model": descriptor.name, "version": descriptor.version, "engine": self.engine}
            | ({"why": self.engine_note} if self.engine_note else {}),
        )

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

    def record_dict(self, row: np.ndarray) -> dict[str, float]:
        """One feature row as the ``{pmml field: value}`` dict pypmml scores singly."""
        return {name: float(row[col]) for name, col in zip(self.input_names, self._columns)}

    def _predict(self, features: np.ndarray) -> RawPrediction:
        if self._compiled is not None:
            return self._compiled.predict(features[:, self._columns])
        # pypmml's own DataFrame path goes through pandas JSON, which keeps only 10
        # digits of the inputs and parses outputs imprecisely; Python's json is exact.
        request = json.dumps({"columns": self.input_names, "data": features[:, self._columns].tolist()})
        response = json.loads(self._pmml.call("predict", request))
        return self.interpret(pd.DataFrame(response["data"], columns=response["columns"]))

    def interpret(self, output: pd.DataFrame) -> RawPrediction:
        """Turn pypmml's output frame into scores by the result rule."""
        if self.function == "regression":
            return RawPrediction(scores=output[self._predicted_column].to_numpy(dtype=np.float64))
        probabilities = (
            np.nan_to_num(output[self._probability_columns].to_numpy(dtype=np.float64), nan=0.0)
            if self._probability_columns
            else None
        )
        if self._predicted_column and self._predicted_column in output:
            scores = pd.to_numeric(output[self._predicted_column], errors="coerce").to_numpy(dtype=np.float64)
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
