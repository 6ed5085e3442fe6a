"""MiningModel: a Segmentation's members, each selected by its predicate, combined as PMML4S combines them.

Classification: average, weightedAverage, majorityVote, weightedMajorityVote;
regression: average, weightedAverage, sum, weightedSum; segments may nest
MiningModels. PMML4S's quirks are reproduced: a probability a member does not
give is NaN and NaN propagates through an average; the predicted class is
Scala's ``maxBy`` over the class map; and an ensemble reads each member's
probabilities by *position* in the output layout of the first selected member,
so members whose layouts differ (as JPMML-SparkML's forest trees, which name no
target and so take their classes from their first leaf) contribute whatever
sits at that position, or NaN.

A segment's model other than a TreeModel is compiled by the ``compile_member``
function the caller passes (the dispatcher in
:mod:`~serving.formats.pmml.compiler.models`), which keeps this module free of
an import cycle.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import numpy as np

from serving.formats.pmml.compiler.base import MODEL_TAGS, Context, Model, Result, Slot
from serving.formats.pmml.compiler.elements import (
    NotCompilable,
    allow_only,
    child_elements,
    find_child,
    number_attribute,
    tag_name,
)
from serving.formats.pmml.compiler.evaluation import Env
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.fields import check_model_common
from serving.formats.pmml.compiler.labels import numeric_labels
from serving.formats.pmml.compiler.outputs import default_layout, output_layout
from serving.formats.pmml.compiler.predicates import PREDICATE_TAGS, PredicateTable
from serving.formats.pmml.compiler.scala import max_by, scala_map_order
from serving.formats.pmml.compiler.trees import Tree, TreeGroup, extended_outputs

#: Compiles the model element of a segment that is not a TreeModel, in the segment's scope.
MemberCompiler = Callable[[ET.Element, Context, Scope], Model]

_CLASSIFICATION_METHODS = {"average", "weightedAverage", "majorityVote", "weightedMajorityVote"}
_REGRESSION_METHODS = {"average", "weightedAverage", "sum", "weightedSum"}


class Mining(Model):
    """A MiningModel's Segmentation: members scored together, combined as PMML4S combines them.

    Tree members are traversed as one ``TreeGroup``; other members (regressions,
    nested MiningModels) are scored one by one. Sums run over the fired segments
    in document order, so they round as pypmml's do. ``compile_member`` compiles
    the members that are not trees.
    """

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope, compile_member: MemberCompiler) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "Segmentation", "ModelStats",
                          "ModelExplanation", "ModelVerification"})  # fmt: skip
        segmentation = find_child(elem, "Segmentation")
        if segmentation is None:
            raise NotCompilable("MiningModel without Segmentation")
        self.method = segmentation.get("multipleModelMethod", "")
        allowed = _REGRESSION_METHODS if ctx.function == "regression" else _CLASSIFICATION_METHODS
        if self.method not in allowed:
            raise NotCompilable(f"{ctx.function} multipleModelMethod {self.method!r}")
        if segmentation.get("missingPredictionTreatment", "continue") != "continue":
            raise NotCompilable("missingPredictionTreatment other than continue")
        allow_only(segmentation, {"Segment"})
        self.ctx = ctx
        self.segment_table = PredicateTable()
        self.segments: list[tuple[int, float, Model | tuple[TreeGroup, int]]] = []
        trees: list[tuple[int, Tree]] = []
        for seg in child_elements(segmentation):
            allow_only(seg, PREDICATE_TAGS | MODEL_TAGS)
            preds = [c for c in child_elements(seg) if tag_name(c) in PREDICATE_TAGS]
            models = [c for c in child_elements(seg) if tag_name(c) in MODEL_TAGS]
            if len(preds) != 1 or len(models) != 1:
                raise NotCompilable("a Segment needs one predicate and one model")
            row = self.segment_table.add(preds[0], scope)
            weight = number_attribute(seg, "weight", 1.0)
            if tag_name(models[0]) == "TreeModel":
                own, has_target = check_model_common(models[0], ctx, scope, top=False)
                tree = Tree(models[0], ctx, own, has_target=has_target)
                declared = output_layout(models[0], ctx, final_only=False)
                if declared is not None:
                    tree.layout = declared
                trees.append((len(self.segments), tree))
                self.segments.append((row, weight, None))  # type: ignore[arg-type]
            else:
                self.segments.append((row, weight, compile_member(models[0], ctx, scope)))
        if not self.segments:
            raise NotCompilable("Segmentation without segments")
        remap = self.segment_table.finish()
        self.segments = [(int(remap[row]), weight, model) for row, weight, model in self.segments]
        # Every tree segment is traversed in one vectorised pass.
        self.group = TreeGroup([t for _, t in trees], ctx) if trees else None
        for position, (i, _) in enumerate(trees):
            row, weight, _ = self.segments[i]
            self.segments[i] = (row, weight, (self.group, position))  # type: ignore[arg-type]
        self.layout = default_layout(ctx)
        if ctx.function == "classification":
            # A member without a target votes its label as a string, which PMML4S then counts apart
            # from the same label voted as a number, one count overwriting the other.
            targetless = any(isinstance(m, tuple) and not m[0].trees[m[1]].has_target for _, _, m in self.segments)
            if "Vote" in self.method and targetless and ctx.labels.datatype != "string":  # type: ignore[union-attr]
                raise NotCompilable("a vote over members without a target on a non-string target")
            self.order = scala_map_order(ctx.labels.keys[: ctx.n_classes])  # type: ignore[union-attr]
            if self.method in ("average", "weightedAverage"):
                self.readers = self._readers()

    @staticmethod
    def _layout(model: Model | tuple[TreeGroup, int]) -> list[Slot]:
        return model[0].trees[model[1]].layout if isinstance(model, tuple) else model.layout

    def _readers(self) -> dict[int, list[list[Slot | None]]]:
        """For each possible first selected segment ("head"), class and segment: the slot PMML4S reads.

        PMML4S finds each class's probability by its position in the head's
        output series and reads that position in every segment's series: a
        segment with another layout yields whatever sits there, and a position
        past its end is NULL (NaN). None here means NaN.
        """
        layouts = [self._layout(m) for _, _, m in self.segments]
        always_first = self.segments[0][0] == 0  # the first segment's predicate is <True/>
        readers: dict[int, list[list[Slot | None]]] = {}
        for head in [0] if always_first else range(len(layouts)):
            per_class = []
            for c in range(self.ctx.n_classes):
                position = layouts[head].index(("prob", c)) if ("prob", c) in layouts[head] else -1
                row: list[Slot | None] = []
                for layout in layouts:
                    slot = layout[position] if 0 <= position < len(layout) else None
                    if slot is not None and slot[0] not in ("prob", "pred"):
                        raise NotCompilable(f"an ensemble member's {slot[0]} output would be read as a probability")
                    row.append(slot)
                per_class.append(row)
            readers[head] = per_class
        return readers

    def finish(self, n_labels: int) -> None:
        """Finish every member, then precompute the segment rows, the weights and what averages read."""
        self._numeric = numeric_labels([self.ctx.labels.text(i) for i in range(n_labels)]) if self.ctx.labels else None
        if self.group is not None:
            self.group.finish(n_labels)
        for _, _, model in self.segments:
            if not isinstance(model, tuple):
                model.finish(n_labels)
        self._rows = np.asarray([row for row, _, _ in self.segments], dtype=np.intp)
        self._all_fire = bool(np.all(self._rows == 0))  # every segment's predicate is <True/>
        self._weights = [w for _, w, _ in self.segments]
        if self.ctx.function == "classification" and self.method in ("average", "weightedAverage"):
            # Column of each member's extended output (see extended_outputs) read for each class, per head.
            slot_column = {"nan": n_labels, "pred": n_labels + 1, "own": n_labels + 2}
            self._sources = {
                head: [
                    np.asarray(
                        [
                            slot_column["nan"] if slot is None
                            else slot_column["pred"] if slot[0] == "pred"
                            else slot_column["own"] if slot[1] is None
                            else slot[1]
                            for slot in (per_class[c][i] for c in range(self.ctx.n_classes))
                        ],
                        dtype=np.intp,
                    )
                    for i in range(len(self.segments))
                ]
                for head, per_class in self.readers.items()
            }  # fmt: skip
            only_trees = all(isinstance(m, tuple) for _, _, m in self.segments) and len(self._sources) == 1
            self._tree_sources = np.vstack(self._sources[0]) if only_trees else None

    def evaluate(self, env: Env) -> Result:
        """The combined prediction of the fired segments: a value, or a label and class probabilities."""
        n = env.rows
        fired = None if self._all_fire else self.segment_table.evaluate(env)[0][self._rows]
        count = np.full(n, float(len(self.segments))) if fired is None else fired.sum(axis=0).astype(np.float64)
        final = self.group.final_nodes(env) if self.group is not None else None
        with np.errstate(all="ignore"):
            if self.ctx.function == "regression":
                values = [
                    self.group.node_value[final[m[1]]] if isinstance(m, tuple) else m.evaluate(env).value
                    for _, _, m in self.segments
                ]
                total, weight_total = self._fold(np.stack(values), fired)
                value = total / count if self.method == "average" else total / weight_total
                value = total if self.method in ("sum", "weightedSum") else value
                return Result(value=np.where(count > 0, value, np.nan))
            if self.method in ("average", "weightedAverage"):
                columns = self._average(env, fired, final, count, n)
            else:
                columns = self._votes(env, fired, final, count, n)
        assert self.ctx.labels is not None
        probs = np.full((n, len(self.ctx.labels)), np.nan)
        probs[:, : self.ctx.n_classes] = columns
        label = max_by(columns, self.order)
        none = count == 0
        probs[none] = np.nan
        return Result(label=np.where(none, -1, label), probs=probs)

    def _fold(self, values: np.ndarray, fired: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Sum over the fired segments of [segments, rows, ...] ``values`` (weighted if the method is), and of weights.

        Segments are added one by one in document order (``add.accumulate`` is
        sequential), as PMML4S folds them, so the sums round as pypmml's do.
        Unfired segments add 0.0, which changes nothing.
        """
        weights = np.asarray(self._weights).reshape((-1,) + (1,) * (values.ndim - 1))
        if "weighted" in self.method:
            values = values * weights
        if fired is not None:
            values = np.where(fired.reshape(fired.shape + (1,) * (values.ndim - 2)), values, 0.0)
        total = np.add.accumulate(values, axis=0)[-1]
        if fired is None:
            weight_total = np.full(values.shape[1], np.add.accumulate(weights.ravel())[-1])
        else:
            weight_total = np.add.accumulate(np.where(fired, weights.reshape(-1, 1), 0.0), axis=0)[-1]
        return total, weight_total

    def _average(self, env, fired, final, count, n) -> np.ndarray:
        """Class probabilities averaged over the fired segments, each read as PMML4S reads it."""
        assert self.ctx.labels is not None
        numeric = self._numeric
        heads = [0] if len(self._sources) == 1 else list(self._sources)
        head = None if len(heads) == 1 else np.argmax(fired, axis=0)
        if len(heads) == 1 and self._tree_sources is not None:  # a plain forest: one gather for all trees
            values = self.group.node_ext[final[:, :, None], self._tree_sources[:, None, :]]
            total, weight_total = self._fold(values, fired)
            return total / (count if self.method == "average" else weight_total)[:, None]
        tree_ext = None
        values = []
        for i, (_, _, member) in enumerate(self.segments):
            if isinstance(member, tuple):
                if tree_ext is None:
                    tree_ext = self.group.node_ext[final]  # [trees, rows, L + 3]
                ext = tree_ext[member[1]]
            else:
                r = member.evaluate(env)
                ext = extended_outputs(r.probs, r.label, numeric)
            value = ext[:, self._sources[heads[0]][i]]
            for h in heads[1:]:
                value = np.where((head == h)[:, None], ext[:, self._sources[h][i]], value)
            values.append(value)
        total, weight_total = self._fold(np.stack(values), fired)
        return total / (count if self.method == "average" else weight_total)[:, None]

    def _votes(self, env, fired, final, count, n) -> np.ndarray:
        """Each class's (weighted) votes over the fired segments, divided by the number of fired segments."""
        k = self.ctx.n_classes
        votes = np.zeros((n, k))
        rows = np.arange(n)
        weighted = self.method.startswith("weighted")
        for i, (_, w, member) in enumerate(self.segments):
            label = self.group.node_label[final[member[1]]] if isinstance(member, tuple) else member.evaluate(env).label
            ok = (label >= 0) & (label < k)
            if fired is not None:
                ok &= fired[i]
            votes[rows[ok], label[ok]] += w if weighted else 1.0
        return votes / count[:, None]
