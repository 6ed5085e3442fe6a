"""NaiveBayesModel on the NumPy engine equals JPMML-Evaluator: sklearn2pmml's GaussianNB and handmade models.

The handmade models cover the threshold floor, PairCounts (with a zero count
and an unlisted value), missing inputs, and the class order JPMML breaks ties by.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_iris

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


def test_sklearn2pmml_gaussian_nb_matches_jpmml(jpmml):
    x = load_iris().data
    rng = np.random.default_rng(5)
    rows = np.vstack([x, x * rng.normal(1.0, 0.3, x.shape), rng.uniform(-20, 40, (50, 4))])
    compiled = assert_matches_jpmml(jpmml, DATA / "family_gaussian_nb.pmml", rows)
    assert compiled.model_element == "NaiveBayesModel"


def _gaussian(field: str, stats: dict[str, tuple[float, float]]) -> str:
    body = "".join(
        f"<TargetValueStat value='{v}'><GaussianDistribution mean='{m}' variance='{s}'/></TargetValueStat>"
        for v, (m, s) in stats.items()
    )
    return f"<BayesInput fieldName='{field}'><TargetValueStats>{body}</TargetValueStats></BayesInput>"


def _counts(counts: dict[str, float]) -> str:
    body = "".join(f"<TargetValueCount value='{v}' count='{c}'/>" for v, c in counts.items())
    return f"<TargetValueCounts>{body}</TargetValueCounts>"


def naive_bayes(threshold: str, priors: dict[str, float], inputs: str) -> str:
    """A NaiveBayesModel over x1, x2, x3 with the given BayesInputs and BayesOutput counts."""
    return document(
        data_dictionary(["x1", "x2", "x3"], "species", LABELS)
        + f"<NaiveBayesModel functionName='classification' threshold='{threshold}'>"
        + mining_schema(["x1", "x2", "x3"], "species")
        + probability_outputs(LABELS)
        + f"<BayesInputs>{inputs}</BayesInputs>"
        + f"<BayesOutput fieldName='species'>{_counts(priors)}</BayesOutput></NaiveBayesModel>"
    )


def _rows(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(9)
    rows = np.column_stack([rng.normal(0, 4, n), rng.normal(1, 3, n), rng.integers(0, 4, n).astype(float)])
    rows[::7, 0] = np.nan  # missing inputs are skipped
    rows[::11, 2] = np.nan
    return rows


PAIRS = (
    "<BayesInput fieldName='x3'>"
    f"<PairCounts value='0'>{_counts({'a': 10, 'b': 2, 'c': 0})}</PairCounts>"
    f"<PairCounts value='1'>{_counts({'a': 3, 'b': 9, 'c': 4})}</PairCounts>"
    f"<PairCounts value='2'>{_counts({'a': 1, 'b': 4, 'c': 12})}</PairCounts>"
    "</BayesInput>"
)  # x3 = 3 is listed nowhere: that input adds nothing


def test_gaussian_and_pair_counts_with_a_threshold_match_jpmml(jpmml, tmp_path):
    inputs = (
        _gaussian("x1", {"a": (-2.0, 1.5), "b": (0.5, 0.7), "c": (3.0, 2.5)})
        + PAIRS
        + _gaussian("x2", {"c": (2.0, 0.4), "a": (0.0, 1.0), "b": (1.5, 3.0)})
    )
    path = write(tmp_path, "nb", naive_bayes("0.001", {"a": 40, "b": 35, "c": 25}, inputs))
    assert_matches_jpmml(jpmml, path, _rows())


def test_a_zero_threshold_lets_densities_vanish_as_jpmml(jpmml, tmp_path):
    inputs = _gaussian("x1", {"a": (-2.0, 0.01), "b": (0.5, 0.02), "c": (3.0, 0.05)}) + PAIRS
    path = write(tmp_path, "nb0", naive_bayes("0.0", {"a": 40, "b": 35, "c": 25}, inputs))
    assert_matches_jpmml(jpmml, path, _rows())


def test_ties_go_to_the_first_class_jpmml_meets(jpmml, tmp_path):
    # a and b are the same class in all but name; the BayesOutput lists b first, so JPMML predicts b.
    same = (1.0, 2.0)
    inputs = _gaussian("x1", {"b": same, "a": same, "c": (-3.0, 1.0)})
    path = write(tmp_path, "tie", naive_bayes("0.0", {"b": 30, "a": 30, "c": 30}, inputs))
    compiled = assert_matches_jpmml(jpmml, path, _rows())
    scores = compiled.predict(np.asarray([[1.0, 0.0, 0.0]])).scores
    assert compiled.labels[int(scores[0])] == "b"


def test_pair_counts_on_a_string_input_match_jpmml(jpmml, tmp_path):
    colors = "".join(f"<Value value='{v}'/>" for v in ("red", "green", "blue", "grey"))
    pairs = (
        "<BayesInput fieldName='color'>"
        f"<PairCounts value='red'>{_counts({'a': 10, 'b': 2, 'c': 1})}</PairCounts>"
        f"<PairCounts value='green'>{_counts({'a': 3, 'b': 9, 'c': 0})}</PairCounts>"
        f"<PairCounts value='blue'>{_counts({'a': 1, 'b': 4, 'c': 12})}</PairCounts>"
        "</BayesInput>"
    )  # grey is a valid value no PairCounts lists
    text = naive_bayes("0.01", {"a": 40, "b": 35, "c": 25}, _gaussian("x1", {"a": (-2.0, 1.5), "b": (0.5, 0.7),
                                                                            "c": (3.0, 2.5)}) + pairs)  # fmt: skip
    text = text.replace(
        "<DataField name='x3' optype='continuous' dataType='double'/>".replace("'", '"'),
        f'<DataField name="color" optype="categorical" dataType="string">{colors}</DataField>',
    ).replace('<MiningField name="x3"/>', '<MiningField name="color"/>')
    rng = np.random.default_rng(12)
    rows = np.empty((200, 3), dtype=object)
    rows[:, 0] = rng.normal(0, 3, 200)
    rows[:, 1] = rng.normal(0, 3, 200)
    rows[:, 2] = rng.choice(["red", "green", "blue", "grey"], 200)
    assert_matches_jpmml(jpmml, write(tmp_path, "strings", text), rows)
