"""Predicates: True, False, SimplePredicate, SimpleSetPredicate and CompoundPredicate (and, or, xor, surrogate).

A :class:`PredicateTable` compiles every predicate of a group of trees (or of a
Segmentation's segments) into one table and evaluates them all at once with
PMML's three-valued logic, as JPMML-Evaluator does: a comparison with a missing
value is UNKNOWN (``isMissing``/``isNotMissing`` never are); ``and``/``or``
combine UNKNOWN as PMML specifies; ``xor`` is UNKNOWN if any operand is, else
the parity of the TRUE ones; ``surrogate`` is its first operand that is not
UNKNOWN (UNKNOWN if all are).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    child_elements,
    find_child,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import WALK_LANES, Env, Getter
from serving.formats.pmml.compiler.expressions import Scope, array_values, predicate_value

#: The predicate elements a tree Node or a Segment may hold.
PREDICATE_TAGS = {"True", "False", "SimplePredicate", "CompoundPredicate", "SimpleSetPredicate"}


class PredicateTable:
    """Every predicate of a group of trees (or of segments), evaluated as rows of two [predicates, rows] masks.

    ``true[p, r]`` and ``unknown[p, r]`` give PMML's TRUE and UNKNOWN (FALSE is
    neither). Simple predicates are compared in one NumPy call per operator;
    row 0 is <True/>, row 1 <False/>.
    """

    def __init__(self) -> None:
        self.fields: list[Getter] = []
        self._field_slots: dict[Getter, int] = {}
        self.simple: list[tuple[int, int, str, float]] = []  # (row, field slot, operator, value)
        self.sets: list[tuple[int, int, bool, np.ndarray]] = []  # (row, field slot, is in, members)
        self.compound: list[tuple[int, str, list[int]]] = []  # (row, operator, child rows)
        self.rows = 2

    def add(self, elem: ET.Element, scope: Scope) -> int:
        """Compile one predicate element; return its row."""
        tag = tag_name(elem)
        if tag == "True":
            return 0
        if tag == "False":
            return 1
        if tag == "SimplePredicate":
            operator = elem.get("operator", "")
            if operator not in _COMPARE and operator not in ("isMissing", "isNotMissing"):
                raise NotCompilable(f"SimplePredicate operator {operator!r}")
            field = scope.resolve(elem.get("field"))
            # The value as the field's column holds it (a float field's rounded, a string's code): see expressions.
            value = (
                np.nan
                if operator in ("isMissing", "isNotMissing")
                else predicate_value(field, operator, elem.get("value"))
            )
            row = self._new_row()
            self.simple.append((row, self._slot(field), operator, value))
            return row
        if tag == "SimpleSetPredicate":
            operator = elem.get("booleanOperator")
            array = find_child(elem, "Array")
            if operator not in ("isIn", "isNotIn") or array is None:
                raise NotCompilable("SimpleSetPredicate needs isIn/isNotIn over an Array")
            field = scope.resolve(elem.get("field"))
            values = array_values(field, array)
            row = self._new_row()
            self.sets.append((row, self._slot(field), operator == "isIn", values))
            return row
        if tag == "CompoundPredicate":
            operator = elem.get("booleanOperator")
            if operator not in ("and", "or", "xor", "surrogate"):
                raise NotCompilable(f"CompoundPredicate {operator!r} is not supported")
            children = [self.add(child, scope) for child in child_elements(elem)]
            if len(children) < 2:
                raise NotCompilable("CompoundPredicate needs two or more predicates")
            row = self._new_row()
            self.compound.append((row, operator, children))
            return row
        raise NotCompilable(f"predicate <{tag}> is not supported")

    def _new_row(self) -> int:
        self.rows += 1
        return self.rows - 1

    def _slot(self, getter: Getter) -> int:
        if getter not in self._field_slots:
            self._field_slots[getter] = len(self.fields)
            self.fields.append(getter)
        return self._field_slots[getter]

    def finish(self) -> np.ndarray:
        """Freeze the table; return ``remap``, the final row of each row ``add`` returned.

        Rows are renumbered so that the simple predicates of each (operator,
        field) form one contiguous block, compared in one call straight into the
        result: no gathering of inputs, no scattering of results.
        """
        order = [0, 1]
        groups: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for row, slot, operator, value in sorted(self.simple, key=lambda p: (p[2], p[1])):
            groups.setdefault((operator, slot), []).append((row, value))
        for items in groups.values():
            order += [row for row, _ in items]
        order += [row for row, _, _, _ in self.sets] + [row for row, _, _ in self.compound]
        remap = np.empty(self.rows, dtype=np.intp)
        remap[order] = np.arange(self.rows)
        self._groups, start = [], 2
        by_operator: dict[str, list] = {}
        for (operator, slot), items in groups.items():
            thresholds = np.asarray([value for _, value in items], dtype=np.float64)[:, None]
            self._groups.append((operator, slice(start, start + len(items)), slot, thresholds))
            by_operator.setdefault(operator, []).append((start, len(items), slot, thresholds))
            start += len(items)
        # The same rows per operator (contiguous, as groups were sorted by operator): for small
        # batches one gathered comparison per operator beats one comparison per field.
        self._operator_groups = [
            (
                operator,
                slice(parts[0][0], parts[-1][0] + parts[-1][1]),
                np.concatenate([np.full(size, slot, dtype=np.intp) for _, size, slot, _ in parts]),
                np.concatenate([thresholds for _, _, _, thresholds in parts]),
            )
            for operator, parts in by_operator.items()
        ]
        self.sets = [(int(remap[row]), slot, is_in, members) for row, slot, is_in, members in self.sets]
        self.compound = [(int(remap[row]), op, [int(remap[c]) for c in kids]) for row, op, kids in self.compound]
        columns = [getattr(g, "column", None) for g in self.fields]
        self._columns = np.asarray(columns, dtype=np.intp) if None not in columns else None
        return remap

    def evaluate(self, env: Env) -> tuple[np.ndarray, np.ndarray]:
        """The (true, unknown) masks, [rows of this table, rows of ``env``]."""
        n = env.rows
        true = np.empty((self.rows, n), dtype=bool)
        true[0], true[1] = True, False
        unknown = np.zeros((self.rows, n), dtype=bool)
        values = missing = None
        if self.fields:
            values = (
                env.columns[self._columns] if self._columns is not None else np.vstack([g(env) for g in self.fields])
            )
            missing = np.isnan(values)
            if not missing.any():
                missing = None  # the usual case: no UNKNOWN anywhere, nothing to mask
        for operator, rows, slot, thresholds in self._groups if n > WALK_LANES else self._operator_groups:
            gone = missing[slot] if missing is not None else np.zeros(n, dtype=bool)
            if operator in ("isMissing", "isNotMissing"):
                true[rows] = gone if operator == "isMissing" else ~gone
                continue
            with np.errstate(invalid="ignore"):
                _COMPARE[operator](values[slot], thresholds, out=true[rows])
            if missing is not None:
                true[rows] &= ~gone  # NaN != t is True in NumPy, UNKNOWN in PMML
                unknown[rows] = gone
        for row, slot, is_in, members in self.sets:
            inside = np.isin(values[slot], members)
            true[row] = inside if is_in else ~inside
            if missing is not None:
                true[row] &= ~missing[slot]
                unknown[row] = missing[slot]
        for row, operator, children in self.compound:  # children always precede their parent
            t, u = true[children], unknown[children]
            f = ~t & ~u
            if operator == "and":
                unknown[row] = ~f.any(axis=0) & u.any(axis=0)
                true[row] = t.all(axis=0)
            elif operator == "or":
                true[row] = t.any(axis=0)
                unknown[row] = ~true[row] & u.any(axis=0)
            elif operator == "xor":
                unknown[row] = u.any(axis=0)
                true[row] = ~unknown[row] & (t.sum(axis=0) % 2 == 1)
            else:  # surrogate: the first operand that is not UNKNOWN
                first = np.argmax(~u, axis=0)
                columns = np.arange(n)
                unknown[row] = u.all(axis=0)
                true[row] = t[first, columns] & ~unknown[row]
        return true, unknown


_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "equal": np.equal,
    "notEqual": np.not_equal,
    "lessThan": np.less,
    "lessOrEqual": np.less_equal,
    "greaterThan": np.greater,
    "greaterOrEqual": np.greater_equal,
}
