"""TreeModel, scored as JPMML-Evaluator scores it: single trees, and groups of trees traversed together.

A :class:`Tree` flattens one TreeModel; a :class:`TreeGroup` lays one or more
trees out as node arrays and finds every (tree, row)'s final node with a NumPy
step per tree level, or a Python walk for a few lanes. The walk is JPMML's:

* the root's predicate is evaluated too: unless it is TRUE there is no prediction;
* at a node, its children are tried in order. A TRUE child is entered. An
  UNKNOWN child (a predicate on a missing value) applies missingValueStrategy:
  ``none`` skips it, ``nullPrediction`` ends with no prediction,
  ``lastPrediction`` ends at the node, ``defaultChild`` enters the node's
  ``defaultChild`` without testing it. No TRUE child: ``noTrueChildStrategy``
  (``returnLastPrediction`` ends at the node if it has a score, else, as
  ``returnNullPrediction``, no prediction);
* the final node's ``score`` is the prediction (a classifier's label even when
  its ScoreDistribution favours another class); its ScoreDistribution gives
  the probabilities, ``probability`` or ``recordCount`` divided by their sum.

``splitCharacteristic`` does not change the walk. ``missingValuePenalty`` only
scales confidences, which are not served. JPMML fails where a final node has
no score, where probabilities are given for some entries only or sum to 0, and
where a defaultChild is missing; such documents are refused, as are
``weightedConfidence`` and ``aggregateNodes``, which JPMML does not implement.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from serving.formats.pmml.compiler.base import Context, Model, Result
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
from serving.formats.pmml.compiler.labels import NO_RANK
from serving.formats.pmml.compiler.predicates import PREDICATE_TAGS, PredicateTable

_MISSING_STRATEGIES = {"none": 0, "lastPrediction": 1, "nullPrediction": 2, "defaultChild": 3}
_NODE_CHILDREN = {"Node", "ScoreDistribution", "Partition"} | PREDICATE_TAGS


class Tree:
    """One TreeModel, flattened in document order: node 0 is the root.

    Per node: its children, its predicate element, its ``score`` (a label index
    or a value) and its ScoreDistribution as [(label, probability)] in document
    order (their order breaks ties in an ensemble).
    """

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope, *, has_target: bool = True) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "Node", "ModelStats", "ModelExplanation",
                          "ModelVerification", "Targets"})  # fmt: skip
        strategy = elem.get("missingValueStrategy", "none")
        if strategy not in _MISSING_STRATEGIES:
            raise NotCompilable(f"TreeModel missingValueStrategy {strategy!r}")
        self.missing_strategy = _MISSING_STRATEGIES[strategy]
        no_true = elem.get("noTrueChildStrategy", "returnNullPrediction")
        if no_true not in ("returnNullPrediction", "returnLastPrediction"):
            raise NotCompilable(f"noTrueChildStrategy {no_true!r}")
        if elem.get("splitCharacteristic", "multiSplit") not in ("multiSplit", "binarySplit"):
            raise NotCompilable(f"splitCharacteristic {elem.get('splitCharacteristic')!r}")
        number_attribute(elem, "missingValuePenalty", 1.0)  # only scales confidences
        self.last_on_no_true_child = no_true == "returnLastPrediction"
        self.ctx = ctx
        self.scope = scope
        self.has_target = has_target
        self.children: list[list[int]] = []
        self.score: list[float | None] = []
        self.distribution: list[list[tuple[int, float]]] = []
        self.default_child: list[int] = []
        self._elements: list[ET.Element] = []
        self.predicate: list[int] = []
        root = find_child(elem, "Node")
        if root is None:
            raise NotCompilable("TreeModel without a Node")
        self._flatten(root)
        self._check()

    def _flatten(self, root: ET.Element) -> None:
        stack = [(root, -1)]
        while stack:
            node, parent = stack.pop()
            allow_only(node, _NODE_CHILDREN)
            index = len(self.children)
            self.children.append([])
            if parent >= 0:
                self.children[parent].append(index)
            self._elements.append(node)
            self.predicate.append(-1)
            self.score.append(self._score(node.get("score")))
            self.distribution.append(self._distribution(node))
            kids = [c for c in child_elements(node) if tag_name(c) == "Node"]
            # Reversed so the stack pops them in document order and siblings stay in order.
            stack.extend((c, index) for c in reversed(kids))

    def _score(self, text: str | None) -> float | None:
        if text is None:
            return None
        if self.ctx.labels is None:
            return parse_number(text, "Node score")
        return float(self.ctx.labels.index(text))  # refused now if it is not one of the target's values

    def _distribution(self, node: ET.Element) -> list[tuple[int, float]]:
        entries = [c for c in child_elements(node) if tag_name(c) == "ScoreDistribution"]
        if not entries:
            return []
        if self.ctx.labels is None:
            raise NotCompilable("ScoreDistribution in a regression tree")
        keys = [self.ctx.labels.index(e.get("value")) for e in entries]
        if len(set(keys)) != len(keys):
            raise NotCompilable("a Node repeats a ScoreDistribution value")
        given = [e.get("probability") is not None for e in entries]
        if any(given) and not all(given):
            raise NotCompilable("probability given for some ScoreDistributions of a Node only")  # JPMML fails
        weights = [number_attribute(e, "probability" if given[0] else "recordCount") for e in entries]
        total = 0.0
        for weight in weights:  # left to right, as JPMML sums them
            total += weight
        if not total > 0.0:
            raise NotCompilable("a Node's ScoreDistribution sums to 0")  # JPMML: undefined result
        return [(k, w / total) for k, w in zip(keys, weights)]

    def _check(self) -> None:
        """Refuse what JPMML fails on: a final node without a score, a missing or wrong defaultChild."""
        ids = [e.get("id") for e in self._elements]
        for index, kids in enumerate(self.children):
            if not kids and self.score[index] is None:
                raise NotCompilable("a leaf Node without a score")
            if kids and self.missing_strategy == 1 and self.score[index] is None:
                raise NotCompilable("lastPrediction needs a score on every inner Node")
            target = -1
            if kids and self.missing_strategy == 3:
                wanted = self._elements[index].get("defaultChild")
                target = next((k for k in kids if wanted is not None and ids[k] == wanted), -1)
                if target < 0:
                    raise NotCompilable("defaultChild must name a child of every inner Node")
            self.default_child.append(target)

    def depth(self) -> int:
        """Edges on the longest path from the root to a leaf."""
        depth, level = 0, [0]
        while True:
            level = [k for node in level for k in self.children[node]]
            if not level:
                return depth
            depth += 1

    def final_capable(self) -> list[int]:
        """The nodes a walk can end at: leaves, and inner nodes with a score."""
        return [i for i, kids in enumerate(self.children) if not kids or self.score[i] is not None]

    def compile_predicates(self, table: PredicateTable) -> None:
        """Add every node's predicate to ``table``, noting each node's row."""
        for index, node in enumerate(self._elements):
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

    def finish(self, n_labels: int) -> None:
        """Lay the trees out as node arrays (children, predicate rows, scores, probabilities) for ``n_labels``."""
        offsets, total = [], 0
        for tree in self.trees:
            offsets.append(total)
            total += len(tree.children)
        self.roots = np.asarray(offsets, dtype=np.intp)
        width = max([1, *(len(c) for t in self.trees for c in t.children)])
        self.null = null = total  # a sentinel node: no prediction
        self.kids = np.full((total + 1, width), -1, dtype=np.intp)
        self.pred = np.zeros(total + 1, dtype=np.intp)
        self.leaf = np.ones(total + 1, dtype=bool)
        self.node_label = np.full(total + 1, -1, dtype=np.int64)
        self.node_value = np.full(total + 1, np.nan)
        self.node_probs = np.zeros((total + 1, n_labels))
        self.node_rank = np.full((total + 1, n_labels), NO_RANK, dtype=np.int64)
        self.on_unknown = np.full(total + 1, -1, dtype=np.intp)  # where an UNKNOWN child leads; -1: skip it
        self.on_no_true = np.full(total + 1, null, dtype=np.intp)  # where no TRUE child leads
        for tree, offset in zip(self.trees, offsets):
            for i, kids in enumerate(tree.children):
                node = offset + i
                self.kids[node, : len(kids)] = [offset + k for k in kids]
                self.leaf[node] = not kids
                self.pred[node] = self._remap[tree.predicate[i]]
                score = tree.score[i]
                if score is not None and self.ctx.labels is None:
                    self.node_value[node] = score
                elif score is not None:
                    self.node_label[node] = int(score)
                for rank, (label, p) in enumerate(tree.distribution[i]):
                    self.node_probs[node, label] = p
                    self.node_rank[node, label] = rank
                if tree.last_on_no_true_child and score is not None:
                    self.on_no_true[node] = node
                strategy = tree.missing_strategy
                self.on_unknown[node] = (
                    -1 if strategy == 0 else null if strategy == 2 else node if strategy == 1
                    else offset + tree.default_child[i]
                )  # fmt: skip
        inner = np.nonzero(~self.leaf[:null])[0]
        self._inner = inner
        self._inner_present = self.kids[inner] >= 0
        self._inner_kids32 = np.where(self._inner_present, self.kids[inner], 0).astype(np.int32)
        self._inner_rows = self.pred[np.where(self._inner_present, self.kids[inner], 0)]  # predicate row per child
        self._inner_no_true = self.on_no_true[inner].astype(np.int32)
        self._inner_unknown = self.on_unknown[inner].astype(np.int32)
        self._inner_stops = self.on_unknown[inner] >= 0
        self._root_rows = self.pred[self.roots]
        self._depth = max(t.depth() for t in self.trees)
        # Plain lists for the Python walk of small batches.
        self._kid_lists = [[int(k) for k in row if k >= 0] for row in self.kids]
        self._pred_list = self.pred.tolist()
        self._unknown_list = self.on_unknown.tolist()
        self._no_true_list = self.on_no_true.tolist()

    def final_nodes(self, env: Env) -> np.ndarray:
        """The node each (tree, row) ends in, [trees, rows]; the sentinel ``null`` for no prediction.

        Vectorised in two steps: first, for every inner node and row, where the
        row goes from there (see the module docstring), then one lookup per tree
        level from the roots.
        """
        true, unknown = self.table.evaluate(env)
        n = env.rows
        if n * len(self.trees) <= WALK_LANES:
            return self._walk(true, unknown, n)
        any_unknown = bool(unknown.any())
        chosen = np.repeat(self._inner_no_true[:, None], n, axis=1)
        taken = np.zeros(chosen.shape, dtype=bool)
        for k in range(self._inner_kids32.shape[1]):
            present = self._inner_present[:, k, None]
            hit_true = true[self._inner_rows[:, k]] & present
            if any_unknown:
                hit_unknown = unknown[self._inner_rows[:, k]] & present & self._inner_stops[:, None]
                hit = hit_true | hit_unknown
                target = np.where(hit_true, self._inner_kids32[:, k, None], self._inner_unknown[:, None])
            else:
                hit, target = hit_true, self._inner_kids32[:, k, None]
            first = hit & ~taken
            chosen = np.where(first, target, chosen)
            taken |= hit
        step = np.empty((len(self.leaf), n), dtype=np.int32)
        step[:] = np.arange(len(self.leaf), dtype=np.int32)[:, None]  # leaves and the sentinel lead to themselves
        step[self._inner] = chosen
        start = np.where(true[self._root_rows], self.roots[:, None], self.null).astype(np.int32)
        columns = np.arange(n)[None, :]
        current = start
        for _ in range(self._depth):
            current = step[current, columns]
        return current

    def _walk(self, true: np.ndarray, unknown: np.ndarray, n: int) -> np.ndarray:
        """``final_nodes`` node by node in Python: for a few lanes, cheaper than a NumPy call per level."""
        true_rows, unknown_rows = true.T.tolist(), unknown.T.tolist()
        kids, pred = self._kid_lists, self._pred_list
        out = np.full((len(self.trees), n), self.null, dtype=np.intp)
        for t, root in enumerate(self.roots.tolist()):
            for r in range(n):
                is_true, is_unknown = true_rows[r], unknown_rows[r]
                node = root if is_true[pred[root]] else self.null
                while node != self.null and kids[node]:
                    nxt = self._no_true_list[node]
                    for k in kids[node]:
                        if is_true[pred[k]]:
                            nxt = k
                            break
                        if is_unknown[pred[k]] and self._unknown_list[node] >= 0:
                            nxt = self._unknown_list[node]
                            break
                    if nxt == node:
                        break
                    node = nxt
                out[t, r] = node
        return out

    def evaluate(self, env: Env) -> Result:
        """The first tree's prediction: its final node's score, label, probabilities and their tie order."""
        final = self.final_nodes(env)[0]
        if self.ctx.labels is None:
            return Result(value=self.node_value[final])
        return Result(label=self.node_label[final], probs=self.node_probs[final], rank=self.node_rank[final])
