"""Inverse link functions, as JPMML-Evaluator's ``DoubleValue`` computes them (same formulas, same order).

Shared by RegressionModel's normalizationMethods and GeneralRegressionModel's
link functions. ``probit`` is Commons Math's standard normal CDF:
``0.5 * erfc(-x / sqrt(2))``, 0 or 1 beyond 40 standard deviations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, as Commons Math's ``NormalDistribution.cumulativeProbability``."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.where(np.isnan(x), 0.0, x)
    out = 0.5 * _ERFC(-finite / math.sqrt(2.0)).astype(np.float64)
    out = np.where(finite < -40.0, 0.0, np.where(finite > 40.0, 1.0, out))
    return np.where(np.isnan(x), np.nan, out)


#: ``y -> g^-1(y)`` by name (RegressionModel normalizationMethod or GLM linkFunction names).
INVERSE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda y: y,
    "identity": lambda y: y,
    "logit": lambda y: 1.0 / (1.0 + np.exp(-y)),
    "exp": np.exp,
    "log": np.exp,
    "probit": normal_cdf,
    "cloglog": lambda y: 1.0 - np.exp(-np.exp(y)),
    "loglog": lambda y: np.exp(-np.exp(-y)),
    "logc": lambda y: 1.0 - np.exp(y),
    "cauchit": lambda y: 0.5 + (1.0 / math.pi) * np.arctan(y),
}


def inverse_power(y: np.ndarray, p: float) -> np.ndarray:
    """The ``power`` link's inverse: ``y ** (1/p)``, ``exp(y)`` for p = 0."""
    return np.power(y, 1.0 / p) if p != 0.0 else np.exp(y)


def inverse_oddspower(y: np.ndarray, p: float) -> np.ndarray:
    """The ``oddspower`` link's inverse: ``1 / (1 + (1 + p*y) ** (-1/p))``, the logistic for p = 0."""
    if p != 0.0:
        return 1.0 / (1.0 + np.power(1.0 + (p * y), -(1.0 / p)))
    return 1.0 / (1.0 + np.exp(-y))


def inverse_negbin(y: np.ndarray, d: float) -> np.ndarray:
    """The ``negbin`` link's inverse: ``1 / (d * (exp(-y) - 1))``."""
    return 1.0 / (d * (np.exp(-y) - 1.0))
