"""TreeModel: single trees, and groups of trees traversed together (a forest's members).

A :class:`Tree` flattens one TreeModel (multi-way or binary splits; every
predicate of :mod:`~serving.formats.pmml.compiler.predicates`; the
missingValueStrategies none, lastPrediction and nullPrediction; both
noTrueChildStrategy values; ScoreDistribution probabilities from
``probability`` or recordCount/total). A :class:`TreeGroup` lays one or more
trees out as node arrays and finds every (tree, row)'s final node with a NumPy
step per tree level, or a Python walk for a few lanes. As in PMML4S, a single
tree predicts its leaf's ``score`` attribute, not its most probable class, and
``nullPrediction`` still lets ``returnLastPrediction`` return the last node.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result, Slot
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    number_attribute,
    parse_number,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import WALK_LANES, Env
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.labels import numeric_labels
from serving.formats.pmml.compiler.predicates import PREDICATE_TAGS, PredicateTable
from serving.formats.pmml.compiler.scala import scala_map_order

_MISSING_STRATEGIES = {"none": 0, "lastPrediction": 1, "nullPrediction": 2}


class Tree:
    """One TreeModel, flattened in document order: node 0 is the root.

    Per node: its children, its predicate's row in the group's predicate table,
    its ``score`` and its ScoreDistribution as {label: probability}.
    """

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope, *, has_target: bool = True) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "Node", "ModelStats", "ModelExplanation",
                          "ModelVerification"})  # fmt: skip
        strategy = elem.get("missingValueStrategy", "none")
        if strategy not in _MISSING_STRATEGIES:
            raise NotCompilable(f"TreeModel missingValueStrategy {strategy!r}")
        self.missing_strategy = _MISSING_STRATEGIES[strategy]
        no_true = elem.get("noTrueChildStrategy", "returnNullPrediction")
        if no_true not in ("returnNullPrediction", "returnLastPrediction"):
            raise NotCompilable(f"noTrueChildStrategy {no_true!r}")
        self.last_on_no_true_child = no_true == "returnLastPrediction"
        self.ctx = ctx
        self.scope = scope
        self.has_target = has_target
        self.children, self.predicate, self.score, self.distribution = [], [], [], []
        self._elements: list[ET.Element] = []
        self._leaf_facts: list[tuple[bool, bool, list[int]]] = []  # (head has probability, has confidence, labels)
        root = find_child(elem, "Node")
        if root is None:
            raise NotCompilable("TreeModel without a Node")
        self._flatten(root)
        self.layout = self.default_layout()

    def _flatten(self, root: ET.Element) -> None:
        stack = [(root, -1)]
        while stack:
            node, parent = stack.pop()
            index = len(self.children)
            self.children.append([])
            if parent >= 0:
                self.children[parent].append(index)
            self._elements.append(node)
            self.predicate.append(-1)
            score = node.get("score")
            if score is not None and self.ctx.labels is None:
                parse_number(score, "Node score")
            elif score is not None:
                self.ctx.labels.index(score)  # refused now if it is not one of the target's values
            self.score.append(score)
            self.distribution.append(self._distribution(node))
            kids = [c for c in child_elements(node) if tag_name(c) == "Node"]
            # Reversed so the stack pops them in document order and siblings stay in order.
            stack.extend((c, index) for c in reversed(kids))

    def _distribution(self, node: ET.Element) -> dict[int, float]:
        allowed = {"Node", "ScoreDistribution", "True", "False", "SimplePredicate", "CompoundPredicate",
                   "SimpleSetPredicate", "Partition"}  # fmt: skip
        allow_only(node, allowed)
        entries = [c for c in child_elements(node) if tag_name(c) == "ScoreDistribution"]
        if not entries:
            self._leaf_facts.append((False, False, []))
            return {}
        if self.ctx.labels is None:
            raise NotCompilable("ScoreDistribution in a regression tree")
        keys = [self.ctx.labels.index(e.get("value")) for e in entries]
        if len(set(keys)) != len(keys):
            raise NotCompilable("a Node repeats a ScoreDistribution value")
        counts = [number_attribute(e, "recordCount") for e in entries]
        given = [number_attribute(e, "probability") if e.get("probability") is not None else None for e in entries]
        total = 0.0
        for count in counts:  # left to right, as Scala's sum
            total += count
        probs = {k: (p if p is not None else (c / total if total > 0.0 else math.nan)) for k, c, p in
                 zip(keys, counts, given)}  # fmt: skip
        head = scala_map_order([self.ctx.labels.keys[k] for k in keys])[0]
        has_probability = total > 0.0 or given[head] is not None
        self._leaf_facts.append((has_probability, entries[head].get("confidence") is not None, keys))
        return probs

    def default_layout(self) -> list[Slot]:
        """PMML4S's default outputs of a TreeModel, decided by its first leaf (first child all the way down).

        The prediction; a confidence if the first entry of that leaf's
        distribution map has one; the probabilities of all classes if that entry
        has a probability, the classes being the target's or, without a target,
        that leaf's own labels; a node id if that leaf has an id.
        """
        node = 0
        while self.children[node]:
            node = self.children[node][0]
        layout: list[Slot] = [("pred",)]
        if self.ctx.labels is not None and self._leaf_facts[node][2]:
            has_probability, has_confidence, keys = self._leaf_facts[node]
            if has_confidence:
                layout.append(("conf",))
            if has_probability:
                classes = range(self.ctx.n_classes) if self.has_target else keys
                layout += [("prob", None), *(("prob", c) for c in classes)]
        if self._elements[node].get("id") is not None:
            layout.append(("id",))
        return layout

    def depth(self) -> int:
        """Edges on the longest path from the root to a leaf."""
        depth, level = 0, [0]
        while True:
            level = [k for node in level for k in self.children[node]]
            if not level:
                return depth
            depth += 1

    def compile_predicates(self, table: PredicateTable) -> None:
        """Add every node's predicate but the root's to ``table``, noting each node's row."""
        for index, node in enumerate(self._elements):
            if index == 0:
                continue  # PMML4S never evaluates the root's predicate
            preds = [c for c in child_elements(node) if tag_name(c) in PREDICATE_TAGS]
            if len(preds) != 1:
                raise NotCompilable("a Node needs exactly one predicate")
            self.predicate[index] = table.add(preds[0], self.scope)


class TreeGroup(Model):
    """Trees traversed together, one lane per (tree, row), a NumPy step per tree level."""

    def __init__(self, trees: list[Tree], ctx: Context) -> None:
        self.trees = trees
        self.ctx = ctx
        self.table = PredicateTable()
        for tree in trees:
            tree.compile_predicates(self.table)
        self._remap = self.table.finish()
        self.layout = trees[0].layout if len(trees) == 1 else []

    def finish(self, n_labels: int) -> None:
        """Lay the trees out as node arrays (children, predicate rows, scores, probabilities) for ``n_labels``."""
        offsets, total = [], 0
        for tree in self.trees:
            offsets.append(total)
            total += len(tree.children)
        self.roots = np.asarray(offsets, dtype=np.intp)
        width = max([1, *(len(c) for t in self.trees for c in t.children)])
        self.null = total  # a sentinel node: the null prediction
        self.kids = np.full((total + 1, width), -1, dtype=np.intp)
        self.pred = np.zeros(total + 1, dtype=np.intp)
        self.leaf = np.zeros(total + 1, dtype=bool)
        self.node_label = np.full(total + 1, -1, dtype=np.int64)
        self.node_value = np.full(total + 1, np.nan)
        self.node_probs = np.full((total + 1, n_labels), np.nan)
        for tree, offset in zip(self.trees, offsets):
            for i, kids in enumerate(tree.children):
                self.kids[offset + i, : len(kids)] = [offset + k for k in kids]
                self.leaf[offset + i] = not kids
                self.pred[offset + i] = self._remap[max(tree.predicate[i], 0)]
                score = tree.score[i]
                if score is not None:
                    if self.ctx.labels is None:
                        self.node_value[offset + i] = float(score)
                    else:
                        self.node_label[offset + i] = self.ctx.labels.index(score)
                for label, p in tree.distribution[i].items():
                    self.node_probs[offset + i, label] = p
        self.missing_strategy = np.asarray([t.missing_strategy for t in self.trees])
        self.last_on_no_true = np.asarray([t.last_on_no_true_child for t in self.trees])
        if self.ctx.labels is not None:
            numeric = numeric_labels([self.ctx.labels.text(i) for i in range(n_labels)])
            self.node_ext = extended_outputs(self.node_probs, self.node_label, numeric)
        inner = np.nonzero(~self.leaf[: self.null])[0]
        self._inner = inner
        self._inner_kids = self.kids[inner]
        self._inner32, self._inner_kids32 = inner.astype(np.int32), self._inner_kids.astype(np.int32)
        self._inner_present = self._inner_kids >= 0
        self._inner_rows = self.pred[np.where(self._inner_present, self._inner_kids, 0)]  # predicate row per child
        tree_of = np.repeat(np.arange(len(self.trees)), [len(t.children) for t in self.trees])[inner]
        self._inner_last_on_unknown = self.missing_strategy[tree_of] == 1
        self._inner_last_on_no_true = self.last_on_no_true[tree_of]
        self._depth = max(t.depth() for t in self.trees)
        # Plain lists for the Python walk of small batches.
        self._kid_lists = [[int(k) for k in row if k >= 0] for row in self.kids]
        self._pred_list = self.pred.tolist()
        self._leaf_list = self.leaf.tolist()

    def final_nodes(self, env: Env) -> np.ndarray:
        """The node each (tree, row) ends in, [trees, rows]; the sentinel ``null`` for no prediction.

        Vectorised in two steps: first, for every inner node and row, where the
        row goes from there (the first TRUE child; else the node itself, where
        it stops, or ``null``), then one lookup per tree level from the roots.
        """
        true, unknown = self.table.evaluate(env)
        n, n_trees = env.rows, len(self.trees)
        if n * n_trees <= WALK_LANES:
            return self._walk(true, unknown, n)
        # No TRUE child: stop at the node (lastPrediction on UNKNOWN, or returnLastPrediction), else no prediction.
        null, inner = np.int32(self.null), self._inner32[:, None]
        if unknown.any():
            unknown_child = np.zeros((len(self._inner), n), dtype=bool)
            for k in range(self._inner_kids.shape[1]):
                unknown_child |= unknown[self._inner_rows[:, k]] & self._inner_present[:, k, None]
            stop_here = self._inner_last_on_no_true[:, None] | (unknown_child & self._inner_last_on_unknown[:, None])
        else:
            stop_here = self._inner_last_on_no_true[:, None]
        stopped = null + stop_here * (inner - null)
        # The first TRUE child wins. Selecting by arithmetic (exactly one term is non-zero)
        # runs several times faster than chained np.where on these [inner nodes, rows] arrays.
        chosen, taken = stopped, None
        for k in range(self._inner_kids.shape[1]):
            hit = true[self._inner_rows[:, k]]
            if not self._inner_present[:, k].all():
                hit &= self._inner_present[:, k, None]
            first = hit if taken is None else hit & ~taken
            chosen = chosen + first * (self._inner_kids32[:, k, None] - stopped)
            taken = hit if taken is None else taken | hit
        step = np.empty((len(self.leaf), n), dtype=np.int32)
        step[:] = np.arange(len(self.leaf), dtype=np.int32)[:, None]  # leaves and the sentinel lead to themselves
        step[self._inner] = chosen
        current = np.repeat(self.roots[:, None].astype(np.int32), n, axis=1)
        columns = np.arange(n)[None, :]
        for _ in range(self._depth):
            current = step[current, columns]
        return current

    def _walk(self, true: np.ndarray, unknown: np.ndarray, n: int) -> np.ndarray:
        """``final_nodes`` node by node in Python: for a few lanes, cheaper than a NumPy call per level."""
        true_rows, unknown_rows = true.T.tolist(), unknown.T.tolist()
        kids, pred, leaf = self._kid_lists, self._pred_list, self._leaf_list
        out = np.full((len(self.trees), n), self.null, dtype=np.intp)
        for t, root in enumerate(self.roots.tolist()):
            last_on_unknown = self.missing_strategy[t] == 1
            last_on_no_true = bool(self.last_on_no_true[t])
            for r in range(n):
                is_true, node = true_rows[r], root
                while not leaf[node]:
                    chosen = next((k for k in kids[node] if is_true[pred[k]]), -1)
                    if chosen < 0:
                        unknown_child = any(unknown_rows[r][pred[k]] for k in kids[node])
                        if (unknown_child and last_on_unknown) or last_on_no_true:
                            out[t, r] = node
                        break
                    node = chosen
                else:
                    out[t, r] = node
        return out

    def evaluate(self, env: Env) -> Result:
        """The first tree's prediction: its final node's score, label and probabilities."""
        final = self.final_nodes(env)[0]
        if self.ctx.labels is None:
            return Result(value=self.node_value[final])
        return Result(label=self.node_label[final], probs=self.node_probs[final])


def extended_outputs(probs: np.ndarray, label: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``probs`` [.., L] plus the columns an ensemble may read: NaN, the label as a number, its probability."""
    safe = np.maximum(label, 0)
    own = np.where(label >= 0, np.take_along_axis(probs, safe[..., None], axis=-1)[..., 0], np.nan)
    as_number = np.where(label >= 0, numeric[safe], np.nan)
    return np.concatenate([probs, np.full((*own.shape, 1), np.nan), as_number[..., None], own[..., None]], axis=-1)
