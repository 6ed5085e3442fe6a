"""NeuralNetwork on the NumPy engine equals JPMML-Evaluator: sklearn2pmml's MLPs and handmade networks.

The handmade networks exercise every activation function, per-layer and
per-network attributes, each normalizationMethod, NormContinuous and
NormDiscrete inputs, a denormalised output and missing inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from serving.formats.pmml.compiler import neural as neural_module
from tests.unit.formats.pmml._families import (
    DATA,
    assert_matches_jpmml,
    data_dictionary,
    document,
    mining_schema,
    probability_outputs,
    write,
)

LABELS = ["a", "b", "c"]


def iris_rows() -> np.ndarray:
    """Iris, the same rows perturbed, and rows far outside the data."""
    x = load_iris().data
    rng = np.random.default_rng(3)
    return np.vstack([x, x * rng.normal(1.0, 0.2, x.shape), rng.uniform(-5, 15, (60, 4))])


def diabetes_rows() -> np.ndarray:
    """The first 5 diabetes features, and the same rows perturbed."""
    x = load_diabetes().data[:, :5]
    rng = np.random.default_rng(4)
    return np.vstack([x, x + rng.normal(0, 0.05, x.shape)])


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("family_mlp_classifier", iris_rows),
        ("family_mlp_classifier_tanh", iris_rows),
        ("family_mlp_regressor", diabetes_rows),
    ],
)
def test_sklearn2pmml_mlp_matches_jpmml(jpmml, name, rows):
    compiled = assert_matches_jpmml(jpmml, DATA / f"{name}.pmml", rows())
    assert compiled.model_element == "NeuralNetwork"


def _inputs(norm: str = "") -> str:
    x1 = f"<NormContinuous field='x1'>{norm}</NormContinuous>" if norm else "<FieldRef field='x1'/>"
    return (
        "<NeuralInputs>"
        f"<NeuralInput id='i1'><DerivedField optype='continuous' dataType='double'>{x1}</DerivedField></NeuralInput>"
        "<NeuralInput id='i2'><DerivedField optype='continuous' dataType='double'><FieldRef field='x2'/>"
        "</DerivedField></NeuralInput>"
        "</NeuralInputs>"
    )


def _neuron(neuron_id: str, bias: float, sources: list[str], weights: list[float], extra: str = "") -> str:
    cons = "".join(f"<Con from='{s}' weight='{w}'/>" for s, w in zip(sources, weights))
    return f"<Neuron id='{neuron_id}' bias='{bias}' {extra}>{cons}</Neuron>"


def _hidden(layer_attrs: str = "", neuron_extra: str = "") -> str:
    neurons = [
        _neuron("h1", 0.3, ["i1", "i2"], [0.21, -0.17], neuron_extra),
        _neuron("h2", -0.2, ["i1", "i2"], [-0.11, 0.23], neuron_extra),
        _neuron("h3", 1.7, ["i2", "i1"], [0.05, 0.13], neuron_extra),
    ]
    return f"<NeuralLayer {layer_attrs}>{''.join(neurons)}</NeuralLayer>"


def regression_network(network_attrs: str, layer_attrs: str = "", output: str = "", norm: str = "") -> str:
    """Two inputs, three hidden neurons, one identity output neuron mapped to y."""
    output_neuron = _neuron("o", 0.4, ["h1", "h2", "h3"], [1.3, -0.7, 0.45])
    out_layer = f"<NeuralLayer activationFunction='identity'>{output_neuron}</NeuralLayer>"
    target = output or "<FieldRef field='y'/>"
    return document(
        data_dictionary(["x1", "x2"], "y", None)
        + f"<NeuralNetwork functionName='regression' {network_attrs}>"
        + mining_schema(["x1", "x2"], "y")
        + _inputs(norm)
        + _hidden(layer_attrs)
        + out_layer
        + "<NeuralOutputs><NeuralOutput outputNeuron='o'><DerivedField optype='continuous' dataType='double'>"
        + target
        + "</DerivedField></NeuralOutput></NeuralOutputs></NeuralNetwork>"
    )


def _rows(n: int = 300, scale: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.uniform(-scale, scale, (n, 2))


@pytest.mark.parametrize(
    "attrs",
    [
        "activationFunction='logistic'",
        "activationFunction='tanh'",
        "activationFunction='identity'",
        "activationFunction='exponential'",
        "activationFunction='reciprocal'",
        "activationFunction='square'",
        "activationFunction='Gauss'",
        "activationFunction='sine'",
        "activationFunction='cosine'",
        "activationFunction='Elliott'",
        "activationFunction='arctan'",
        "activationFunction='rectifier'",
        "activationFunction='rectifier' x-leakage='0.1'",
        "activationFunction='rectifier' leakage='0.1'",  # not PMML: JPMML ignores it
        "activationFunction='threshold' threshold='0.25'",
        "activationFunction='threshold'",
        "activationFunction='radialBasis' width='1.5' altitude='2.0'",
        "activationFunction='radialBasis' width='0.8'",
    ],
)
def test_every_activation_function_matches_jpmml(jpmml, tmp_path, attrs):
    path = write(tmp_path, "activation", regression_network(attrs))
    assert_matches_jpmml(jpmml, path, _rows())


def test_layer_attributes_override_the_network_and_neuron_width(jpmml, tmp_path):
    text = regression_network(
        "activationFunction='tanh' threshold='5' width='9'",
        layer_attrs="activationFunction='radialBasis' width='1.2'",
    ).replace("<Neuron id='h2' bias='-0.2' ", "<Neuron id='h2' bias='-0.2' width='0.7' ")
    assert_matches_jpmml(jpmml, write(tmp_path, "override", text), _rows())
    text = regression_network("activationFunction='sine'", layer_attrs="activationFunction='threshold' threshold='0.1'")
    assert_matches_jpmml(jpmml, write(tmp_path, "threshold_layer", text), _rows())


def test_normcontinuous_input_and_denormalised_output_match_jpmml(jpmml, tmp_path):
    norm = "<LinearNorm orig='-3' norm='-1'/><LinearNorm orig='0' norm='0.2'/><LinearNorm orig='3' norm='1'/>"
    output = "<NormContinuous field='y'><LinearNorm orig='-100' norm='-5'/><LinearNorm orig='100' norm='5'/>" + (
        "</NormContinuous>"
    )
    text = regression_network("activationFunction='logistic'", output=output, norm=norm)
    # beyond the input norms (extrapolated) too
    assert_matches_jpmml(jpmml, write(tmp_path, "norms", text), _rows(scale=5.0))


def test_normdiscrete_input_matches_jpmml(jpmml, tmp_path):
    text = regression_network("activationFunction='logistic'").replace(
        "<FieldRef field='x1'/></DerivedField>", "<NormDiscrete field='x1' value='1'/></DerivedField>"
    )
    rows = np.round(_rows(), 0)  # x1 is 1 on some rows
    assert_matches_jpmml(jpmml, write(tmp_path, "normdiscrete", text), rows)


def test_a_missing_input_gives_no_prediction_as_jpmml(jpmml, tmp_path):
    rows = _rows(20)
    rows[::3, 1] = np.nan
    compiled = assert_matches_jpmml(
        jpmml, write(tmp_path, "missing", regression_network("activationFunction='tanh'")), rows
    )
    assert np.isnan(compiled.predict(rows).scores[::3]).all()


def classification_network(hidden: str, normalization: str, outputs: list[str] | None = None) -> str:
    """Two inputs, three hidden neurons, three output neurons (one per label) normalised by ``normalization``."""
    outputs = outputs or LABELS
    out = "".join(
        _neuron(f"o{i}", 0.1 * i, ["h1", "h2", "h3"], [0.9 - i, 0.3 * i - 0.2, 0.5]) for i in range(len(outputs))
    )
    neural_outputs = "".join(
        f"<NeuralOutput outputNeuron='o{i}'><DerivedField optype='categorical' dataType='string'>"
        f"<NormDiscrete field='species' value='{v}'/></DerivedField></NeuralOutput>"
        for i, v in enumerate(outputs)
    )
    return document(
        data_dictionary(["x1", "x2"], "species", LABELS)
        + f"<NeuralNetwork functionName='classification' activationFunction='{hidden}'>"
        + mining_schema(["x1", "x2"], "species")
        + probability_outputs(LABELS)
        + _inputs()
        + _hidden()
        + f"<NeuralLayer activationFunction='identity' normalizationMethod='{normalization}'>{out}</NeuralLayer>"
        + f"<NeuralOutputs>{neural_outputs}</NeuralOutputs></NeuralNetwork>"
    )


@pytest.mark.parametrize(
    ("hidden", "normalization"), [("tanh", "softmax"), ("logistic", "simplemax"), ("logistic", "none")]
)
def test_classification_normalizations_match_jpmml(jpmml, tmp_path, hidden, normalization):
    path = write(tmp_path, "classifier", classification_network(hidden, normalization))
    assert_matches_jpmml(jpmml, path, _rows())


def test_a_class_without_an_output_neuron_has_probability_zero(jpmml, tmp_path):
    path = write(tmp_path, "two_of_three", classification_network("tanh", "softmax", outputs=["c", "a"]))
    compiled = assert_matches_jpmml(jpmml, path, _rows())
    got = compiled.predict(_rows())
    assert (got.probabilities[:, list(compiled.labels).index("b")] == 0).all()


def test_an_output_that_is_not_the_target_is_refused():
    text = regression_network("activationFunction='tanh'", output="<FieldRef field='x1'/>")
    with pytest.raises(NotCompilable, match="another field"):
        compile_pmml(text)


def test_big_batches_are_scored_in_chunks_with_the_same_answers(jpmml, tmp_path, monkeypatch):
    monkeypatch.setattr(neural_module, "_CELLS", 100)  # 10 rows per chunk of the [entities, rows] stack
    path = write(tmp_path, "chunks", classification_network("tanh", "softmax"))
    assert_matches_jpmml(jpmml, path, _rows(101))
