"""Apply: PMML's built-in functions as JPMML-Evaluator evaluates them, on typed columns.

Arithmetic (``+ - * / modulo pow threshold``) works in double and casts the
result to the arguments' common type (two integers divide as Java ints; two
floats round to float32); ``log10 ln exp sqrt expm1 ln1p`` and the
trigonometric functions give doubles; ``abs rint`` keep the type; ``floor ceil
round`` give integers (Java's ``Math.round``: half up); ``min max sum avg
product`` skip missing arguments (``avg`` as Commons Math's running mean);
``equal notEqual lessThan lessOrEqual greaterThan greaterOrEqual and or not
isMissing isNotMissing isIn isNotIn if`` as JPMML defines them. ``mapMissingTo``
replaces the result when an argument is missing (for ``if``: the condition or
the branch taken), ``defaultValue`` a missing result. A missing argument to a
function that requires it fails the record in JPMML: such rows are flagged in
``env.cache[FAILED]`` and have no prediction (JPMML evaluates fields lazily, so
it may not fail a row whose failing field its model never reads; here it does).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from serving.formats.pmml.compiler.elements import NotCompilable, child_elements
from serving.formats.pmml.compiler.evaluation import Env, Getter
from serving.formats.pmml.compiler.expressions import (
    Scope,
    Typed,
    compile_expression,
    datatype_of,
    replacement,
    unify,
    vocabulary_of,
    with_missing,
)

_DOUBLE_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log10": np.log10, "ln": np.log, "exp": np.exp, "sqrt": np.sqrt, "expm1": np.expm1, "ln1p": np.log1p,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
}  # fmt: skip

_COMPARE = {
    "lessThan": np.less,
    "lessOrEqual": np.less_equal,
    "greaterThan": np.greater,
    "greaterOrEqual": np.greater_equal,
}


def apply(elem: ET.Element, scope: Scope) -> Typed:
    """Compile an Apply element.

    Raises:
        NotCompilable: the function, its arity or its argument types are not supported.
    """
    name = elem.get("function", "")
    if elem.get("invalidValueTreatment", "returnInvalid") not in ("returnInvalid", "asIs"):
        raise NotCompilable(f"Apply invalidValueTreatment {elem.get('invalidValueTreatment')!r}")
    args = [compile_expression(child, scope) for child in child_elements(elem)]
    result = _function(name, args)
    mapped = elem.get("mapMissingTo")
    if mapped is None:  # (with mapMissingTo, JPMML never calls the function on a missing argument)
        result = _strict(result, _required(name, args))
    default = elem.get("defaultValue")
    if default is not None:
        result = with_missing(result, default, "Apply defaultValue")
    if mapped is None:
        return result
    value_of, vocabulary = replacement(result, mapped, "Apply mapMissingTo")
    if name == "if":
        condition = args[0]

        def any_missing(env: Env) -> np.ndarray:
            flag = condition(env)
            gone = np.isnan(flag)
            if len(args) > 1:
                gone |= (flag == 1) & np.isnan(args[1](env))
            if len(args) > 2:
                gone |= (flag == 0) & np.isnan(args[2](env))
            return gone
    else:

        def any_missing(env: Env) -> np.ndarray:
            gone = np.zeros(env.rows, dtype=bool)
            for a in args:
                gone |= np.isnan(a(env))
            return gone

    return Typed(lambda env: np.where(any_missing(env), value_of, result(env)), datatype_of(result), vocabulary)


def _function(name: str, args: list[Getter]) -> Typed:
    if name in ("+", "-", "*", "/", "modulo", "pow", "threshold"):
        _arity(name, args, 2, 2)
        _numbers(name, args)
        datatype = unify(args)[1]
        return Typed(_arithmetic(name, args, datatype), datatype)
    if name in _DOUBLE_MATH:
        _arity(name, args, 1, 1)
        _numbers(name, args)
        fn, arg = _DOUBLE_MATH[name], args[0]
        return Typed(lambda env: fn(arg(env)), "double")
    if name in ("abs", "rint"):
        _arity(name, args, 1, 1)
        _numbers(name, args)
        fn, arg = (np.abs if name == "abs" else np.rint), args[0]
        return Typed(lambda env: fn(arg(env)), datatype_of(arg))
    if name in ("floor", "ceil", "round"):
        _arity(name, args, 1, 1)
        _numbers(name, args)
        fn = {"floor": np.floor, "ceil": np.ceil, "round": _java_round}[name]
        arg = args[0]
        return Typed(lambda env: _int_exact(fn(arg(env))), "integer")
    if name in ("min", "max", "sum", "avg", "product"):
        _arity(name, args, 1, None)
        _numbers(name, args)
        datatype = unify(args)[1]
        if name == "avg" and datatype == "integer":
            datatype = "double"
        rounding = datatype == "float"

        def aggregate(env: Env) -> np.ndarray:
            out = _aggregate(name, [a(env) for a in args])
            return out.astype(np.float32).astype(np.float64) if rounding else out

        return Typed(aggregate, datatype)
    if name in ("equal", "notEqual"):
        _arity(name, args, 2, 2)
        (a, b), _, _ = unify(args)
        same = name == "equal"
        return Typed(lambda env: _boolean((a(env) == b(env)) == same, a(env), b(env)), "boolean")
    if name in _COMPARE:
        _arity(name, args, 2, 2)
        _numbers(name, args)
        fn, (a, b) = _COMPARE[name], args
        return Typed(lambda env: _boolean(fn(a(env), b(env)), a(env), b(env)), "boolean")
    if name in ("and", "or"):
        _arity(name, args, 2, None)
        _booleans(name, args)
        return Typed(lambda env: _logical(name, [a(env) for a in args]), "boolean")
    if name == "not":
        _arity(name, args, 1, 1)
        _booleans(name, args)
        arg = args[0]
        return Typed(lambda env: 1.0 - arg(env), "boolean")
    if name in ("isMissing", "isNotMissing"):
        _arity(name, args, 1, 1)
        arg, missing = args[0], name == "isMissing"
        return Typed(lambda env: (np.isnan(arg(env)) == missing).astype(np.float64), "boolean")
    if name in ("isIn", "isNotIn"):
        _arity(name, args, 2, None)
        unified, _, _ = unify(args)
        inside = name == "isIn"

        def member(env: Env) -> np.ndarray:
            x = unified[0](env)
            hit = np.zeros(env.rows, dtype=bool)
            for other in unified[1:]:
                y = other(env)
                hit |= (x == y) | (np.isnan(x) & np.isnan(y))
            return (hit == inside).astype(np.float64)

        return Typed(member, "boolean")
    if name == "if":
        _arity(name, args, 2, 3)
        _booleans(name, args[:1])
        branches, datatype, vocabulary = unify(args[1:])
        condition = args[0]

        def choose(env: Env) -> np.ndarray:
            flag = condition(env)
            other = branches[1](env) if len(branches) > 1 else np.full(env.rows, np.nan)
            return np.where(np.isnan(flag), np.nan, np.where(flag == 1, branches[0](env), other))

        return Typed(choose, datatype, vocabulary)
    raise NotCompilable(f"Apply function {name!r} is not supported")


#: The ``env.cache`` key of the rows JPMML fails (a missing argument a function requires); no prediction there.
FAILED = "failed"

_TOLERANT = {"+", "-", "*", "/", "modulo", "min", "max", "sum", "avg", "product", "isMissing", "isNotMissing",
             "isIn", "isNotIn"}  # fmt: skip


def _required(name: str, args: list[Getter]) -> list[Getter]:
    """The arguments JPMML's function ``name`` requires (a missing one fails the record)."""
    if name in _TOLERANT:
        return []
    return args[:1] if name == "if" else args


def _strict(expr: Typed, required: list[Getter]) -> Typed:
    if not required:
        return expr

    def get(env: Env) -> np.ndarray:
        gone = np.zeros(env.rows, dtype=bool)
        for arg in required:
            gone |= np.isnan(arg(env))
        if gone.any():
            env.cache[FAILED] = env.cache[FAILED] | gone if FAILED in env.cache else gone  # type: ignore[index]
        return expr(env)

    return Typed(get, expr.datatype, expr.vocabulary)


def _arity(name: str, args: list[Getter], low: int, high: int | None) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        raise NotCompilable(f"function {name!r} with {len(args)} arguments")


def _numbers(name: str, args: list[Getter]) -> None:
    if any(vocabulary_of(a) is not None or datatype_of(a) not in ("double", "float", "integer") for a in args):
        raise NotCompilable(f"function {name!r} of non-numeric arguments")


def _booleans(name: str, args: list[Getter]) -> None:
    if any(datatype_of(a) != "boolean" for a in args):
        raise NotCompilable(f"function {name!r} of non-boolean arguments")


def _boolean(result: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a) | np.isnan(b), np.nan, result.astype(np.float64))


def _logical(name: str, values: list[np.ndarray]) -> np.ndarray:
    stack = np.vstack(values)
    result = stack.all(axis=0) if name == "and" else (stack == 1).any(axis=0)
    return np.where(np.isnan(stack).any(axis=0), np.nan, result.astype(np.float64))


def _arithmetic(name: str, args: list[Getter], datatype: str) -> Getter:
    a, b = args
    ints = datatype == "integer"

    def get(env: Env) -> np.ndarray:
        x, y = a(env), b(env)
        if name == "+":
            out = x + y
        elif name == "-":
            out = x - y
        elif name == "*":
            out = x * y
        elif name == "/":
            out = np.trunc(x / y) if ints else x / y
            if ints:
                out = np.where(y == 0, np.nan, out)
        elif name == "modulo":
            out = x - np.floor(x / y) * y
        elif name == "pow":
            out = np.power(x, y)
            if ints:
                out = np.where(y < 0, np.nan, out)
        else:
            out = (x > y).astype(np.float64)
        out = np.where(np.isnan(x) | np.isnan(y), np.nan, out)
        if datatype == "float":
            return out.astype(np.float32).astype(np.float64)
        return np.where(np.abs(out) > 2.0**31 - 1, np.nan, out) if ints else out

    return get


def _java_round(x: np.ndarray) -> np.ndarray:
    """Java's ``Math.round``: the closest long, ties toward positive infinity."""
    floor = np.floor(x)
    return floor + ((x - floor) >= 0.5)


def _int_exact(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) > 2.0**31 - 1, np.nan, x)


def _aggregate(name: str, values: list[np.ndarray]) -> np.ndarray:
    """Commons Math's statistics over the present arguments, left to right; all missing is missing."""
    stack = np.vstack(values)
    present = ~np.isnan(stack)
    count = present.sum(axis=0)
    if name == "min":
        out = np.fmin.reduce(stack, axis=0)
    elif name == "max":
        out = np.fmax.reduce(stack, axis=0)
    elif name == "avg":  # FirstMoment: m += (x - m) / n
        out, n = np.zeros(stack.shape[1]), np.zeros(stack.shape[1])
        for row, ok in zip(stack, present):
            n = n + ok
            out = np.where(ok, out + (row - out) / np.maximum(n, 1), out)
    else:
        out = np.zeros(stack.shape[1]) if name == "sum" else np.ones(stack.shape[1])
        for row, ok in zip(stack, present):
            out = np.where(ok, out + row if name == "sum" else out * row, out)
    return np.where(count > 0, out, np.nan)
