"""SupportVectorMachineModel on the NumPy engine equals JPMML-Evaluator: sklearn2pmml's SVC/SVR and handmade SVMs.

The handmade models cover every kernel, OneAgainstOne votes (with thresholds
and ties), OneAgainstAll, alternateBinaryTargetCategory, REAL-SparseArray
vectors and regression; what JPMML does not score is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from serving.formats.pmml.compiler import NotCompilable, compile_pmml
from serving.formats.pmml.compiler import svm as svm_module
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
IRIS = ["setosa", "versicolor", "virginica"]


def _with_probabilities(text: str, labels: list[str]) -> str:
    """The document with probability outputs per label (sklearn2pmml writes none for an SVC)."""
    return text.replace("</MiningSchema>", "</MiningSchema>" + probability_outputs(labels), 1)


@pytest.mark.parametrize("name", ["family_svc_rbf", "family_svc_poly"])
def test_sklearn2pmml_svc_votes_match_jpmml(jpmml, tmp_path, name):
    x = load_iris().data
    rng = np.random.default_rng(6)
    rows = np.vstack([x, x * rng.normal(1.0, 0.3, x.shape), rng.uniform(-3, 10, (80, 4))])
    text = _with_probabilities((DATA / f"{name}.pmml").read_text(), IRIS)
    compiled = assert_matches_jpmml(jpmml, write(tmp_path, name, text), rows)
    assert compiled.model_element == "SupportVectorMachineModel"


def test_sklearn2pmml_svr_matches_jpmml(jpmml):
    x = load_diabetes().data[:, :5]
    rng = np.random.default_rng(7)
    assert_matches_jpmml(jpmml, DATA / "family_svr.pmml", np.vstack([x, x + rng.normal(0, 0.05, x.shape)]))


KERNELS = {
    "linear": "<LinearKernelType/>",
    "polynomial": "<PolynomialKernelType gamma='0.7' coef0='0.5' degree='3'/>",
    "polynomial_defaults": "<PolynomialKernelType/>",
    "radialBasis": "<RadialBasisKernelType gamma='0.4'/>",
    "sigmoid": "<SigmoidKernelType gamma='0.3' coef0='-0.2'/>",
}

VECTORS = [(-1.0, 0.5), (0.3, -1.2), (1.1, 1.4), (-0.4, -0.6), (2.0, -0.3), (0.0, 1.0)]


def _dictionary(sparse: bool = False) -> str:
    def vector(i: int, v: tuple[float, float]) -> str:
        if sparse:
            return (
                f"<VectorInstance id='v{i}'><REAL-SparseArray n='2'><Indices>1 2</Indices>"
                f"<REAL-Entries>{v[0]} {v[1]}</REAL-Entries></REAL-SparseArray></VectorInstance>"
            )
        return f"<VectorInstance id='v{i}'><Array type='real' n='2'>{v[0]} {v[1]}</Array></VectorInstance>"

    fields = "<VectorFields numberOfFields='2'><FieldRef field='x1'/><FieldRef field='x2'/></VectorFields>"
    return f"<VectorDictionary numberOfVectors='{len(VECTORS)}'>{fields}" + (
        "".join(vector(i, v) for i, v in enumerate(VECTORS)) + "</VectorDictionary>"
    )


def _machine(vectors: list[int], coefficients: list[float], absolute: float, attrs: str = "") -> str:
    svs = "".join(f"<SupportVector vectorId='v{i}'/>" for i in vectors)
    coefs = "".join(f"<Coefficient value='{c}'/>" for c in coefficients)
    return (
        f"<SupportVectorMachine {attrs}><SupportVectors numberOfSupportVectors='{len(vectors)}'>{svs}</SupportVectors>"
        f"<Coefficients numberOfCoefficients='{len(vectors)}' absoluteValue='{absolute}'>{coefs}</Coefficients>"
        "</SupportVectorMachine>"
    )


PAIRWISE = (
    _machine([0, 1, 2], [0.8, -0.5, -0.3], 0.1, "targetCategory='a' alternateTargetCategory='b'")
    + _machine([1, 3, 4], [-0.6, 0.9, 0.2], -0.05, "targetCategory='c' alternateTargetCategory='a' threshold='0.2'")
    + _machine([2, 4, 5], [0.7, -0.4, -0.35], 0.0, "targetCategory='b' alternateTargetCategory='c'")
)


def svm(function: str, kernel: str, machines: str, attrs: str = "", sparse: bool = False) -> str:
    """An SVM over x1, x2 with the six VECTORS."""
    classifier = function == "classification"
    target = "species" if classifier else "y"
    return document(
        data_dictionary(["x1", "x2"], target, LABELS if classifier else None)
        + f"<SupportVectorMachineModel functionName='{function}' {attrs}>"
        + mining_schema(["x1", "x2"], target)
        + (probability_outputs(LABELS) if classifier and "OneAgainstOne" in attrs else "")
        + kernel
        + _dictionary(sparse)
        + machines
        + "</SupportVectorMachineModel>"
    )


def _rows(n: int = 400) -> np.ndarray:
    return np.random.default_rng(13).uniform(-2.5, 2.5, (n, 2))


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_one_against_one_with_every_kernel_matches_jpmml(jpmml, tmp_path, kernel):
    text = svm("classification", KERNELS[kernel], PAIRWISE, "classificationMethod='OneAgainstOne' threshold='0.05'")
    compiled = assert_matches_jpmml(jpmml, write(tmp_path, kernel, text), _rows())
    # the three machines can vote in a cycle (one vote each): JPMML's winner is then the first class voted for
    got = compiled.predict(_rows()).probabilities
    assert kernel != "linear" or np.isclose(got, 1 / 3).all(axis=1).any()


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_regression_with_every_kernel_matches_jpmml(jpmml, tmp_path, kernel):
    machine = _machine([0, 1, 2, 3, 4, 5], [0.8, -0.5, -0.3, 1.2, -0.9, 0.45], 0.7)
    assert_matches_jpmml(jpmml, write(tmp_path, kernel, svm("regression", KERNELS[kernel], machine)), _rows())


def test_sparse_vectors_match_jpmml(jpmml, tmp_path):
    machine = _machine([0, 1, 2, 3, 4, 5], [0.8, -0.5, -0.3, 1.2, -0.9, 0.45], 0.7)
    text = svm("regression", KERNELS["radialBasis"], machine, sparse=True)
    assert_matches_jpmml(jpmml, write(tmp_path, "sparse", text), _rows())


def test_one_against_all_picks_the_smallest_value_as_jpmml(jpmml, tmp_path):
    machines = (
        _machine([0, 1], [0.8, -0.5], 0.1, "targetCategory='b'")
        + _machine([2, 3], [-0.6, 0.9], -0.05, "targetCategory='a'")
        + _machine([4, 5], [0.7, -0.4], 0.0, "targetCategory='c'")
    )
    text = svm("classification", KERNELS["radialBasis"], machines, "classificationMethod='OneAgainstAll'")
    assert_matches_jpmml(jpmml, write(tmp_path, "ova", text), _rows())


def test_alternate_binary_target_category_rounds_the_value_as_jpmml(jpmml, tmp_path):
    # On these rows the value rounds to 0 (a vote for c) or 1 (for a); JPMML fails any other rounded value.
    text = svm(
        "classification",
        "<LinearKernelType/>",
        _machine([0, 2], [0.2, 0.15], 0.45, "targetCategory='a'"),
        "classificationMethod='OneAgainstOne' alternateBinaryTargetCategory='c'",
    )
    rows = np.random.default_rng(2).uniform(-1.2, 1.2, (300, 2))
    compiled = assert_matches_jpmml(jpmml, write(tmp_path, "binary", text), rows)
    labels = {compiled.labels[int(s)] for s in compiled.predict(rows).scores}
    assert labels == {"a", "c"}


@pytest.mark.parametrize(
    "attrs",
    ["representation='Coefficients'", "maxWins='true'", "classificationMethod='OneAgainstOne' x-mathContext='float'"],
)
def test_what_jpmml_does_not_score_is_refused(attrs):
    with pytest.raises(NotCompilable):
        compile_pmml(svm("classification", KERNELS["linear"], PAIRWISE, attrs))


def test_big_batches_are_scored_in_chunks_with_the_same_answers(jpmml, tmp_path, monkeypatch):
    monkeypatch.setattr(svm_module, "_CELLS", 50)  # 8 rows per chunk of the [vectors, rows] kernel matrix
    text = svm("classification", KERNELS["radialBasis"], PAIRWISE, "classificationMethod='OneAgainstOne'")
    assert_matches_jpmml(jpmml, write(tmp_path, "chunks", text), _rows(101))
