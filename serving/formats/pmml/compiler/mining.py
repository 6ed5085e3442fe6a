"""MiningModel: a Segmentation's members, each selected by its predicate, combined as JPMML-Evaluator combines them.

Regression: sum, weightedSum, average, weightedAverage, median, weightedMedian,
selectFirst, modelChain. Classification: average, weightedAverage,
majorityVote, weightedMajorityVote, selectFirst, modelChain. Segments may nest
MiningModels. Members are read by label (see :mod:`.ensemble`).

A member without a prediction (a tree ending in no node, say) is handled by
``missingPredictionTreatment`` as JPMML handles it: ``returnMissing`` leaves the
ensemble without a prediction; so does the default ``continue``, except in a
vote, where such members vote for "no prediction", which wins only with more
votes than any label; ``skipSegment`` leaves the member out. Where JPMML fails
(every fired member skipped), there is no prediction, but a sum is 0.

In a ``modelChain`` the segments run in order; each fired segment's
OutputFields (``predictedValue`` of a regression member, ``probability`` of a
classifier's label) become fields the later segments (and their predicates)
read, and the last fired segment of the chain's own function gives the result.

The members that are not TreeModels (and every member of a chain) are compiled
by the ``compile_member`` function the caller passes (the dispatcher in
:mod:`~serving.formats.pmml.compiler.models`), which keeps this module free of
an import cycle. Tree members otherwise are traversed together as one
:class:`~serving.formats.pmml.compiler.trees.TreeGroup`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from serving.formats.pmml.compiler import ensemble
from serving.formats.pmml.compiler.base import MODEL_TAGS, Context, Model, Result
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
from serving.formats.pmml.compiler.labels import NO_RANK, default_rank
from serving.formats.pmml.compiler.predicates import PREDICATE_TAGS, PredicateTable
from serving.formats.pmml.compiler.trees import Tree, TreeGroup

#: Compiles the model element of a segment in the segment's context and scope.
MemberCompiler = Callable[[ET.Element, Context, Scope], Model]

_METHODS = {
    "regression": {"sum", "weightedSum", "average", "weightedAverage", "median", "weightedMedian", "selectFirst",
                   "modelChain"},
    # (max is not compiled: JPMML breaks its ties in a way not yet pinned down)
    "classification": {"average", "weightedAverage", "majorityVote", "weightedMajorityVote", "selectFirst",
                       "modelChain"},
}  # fmt: skip
_TREATMENTS = ("continue", "returnMissing", "skipSegment")


@dataclass
class _Member:
    """One Segment: its predicate's row (in ``table``), weight, model (or tree position) and function."""

    row: int
    weight: float
    model: Model | None
    tree: int
    function: str
    table: PredicateTable | None = None  # a chain's own table per segment
    outputs: list[tuple[object, str, int]] = field(default_factory=list)  # (cache key, kind, label)


class Mining(Model):
    """A MiningModel's Segmentation: members scored together, combined as JPMML combines them."""

    def __init__(self, elem: ET.Element, ctx: Context, scope: Scope, compile_member: MemberCompiler) -> None:
        allow_only(elem, {"MiningSchema", "Output", "LocalTransformations", "Segmentation", "ModelStats",
                          "ModelExplanation", "ModelVerification", "Targets"})  # fmt: skip
        segmentation = find_child(elem, "Segmentation")
        if segmentation is None:
            raise NotCompilable("MiningModel without Segmentation")
        self.method = segmentation.get("multipleModelMethod", "")
        if self.method not in _METHODS.get(ctx.function, set()):
            raise NotCompilable(f"{ctx.function} multipleModelMethod {self.method!r}")
        self.treatment = segmentation.get("missingPredictionTreatment", "continue")
        if self.treatment not in _TREATMENTS or (self.method == "modelChain" and self.treatment == "skipSegment"):
            raise NotCompilable(f"missingPredictionTreatment {self.treatment!r} with {self.method}")
        allow_only(segmentation, {"Segment"})
        self.ctx = ctx
        self.chain = self.method == "modelChain"
        self.votes_for_none = self.treatment == "continue" and self.method in ("majorityVote", "weightedMajorityVote")
        self.segment_table = PredicateTable()
        self.members: list[_Member] = []
        trees: list[Tree] = []
        member_scope = scope
        for seg in child_elements(segmentation):
            allow_only(seg, PREDICATE_TAGS | MODEL_TAGS)
            preds = [c for c in child_elements(seg) if tag_name(c) in PREDICATE_TAGS]
            models = [c for c in child_elements(seg) if tag_name(c) in MODEL_TAGS]
            if len(preds) != 1 or len(models) != 1:
                raise NotCompilable("a Segment needs one predicate and one model")
            sub = self._member_context(models[0])
            if self.method in ("selectFirst", "modelChain") and sub is ctx:
                _check_selectable(models[0])
            weight = number_attribute(seg, "weight", 1.0)
            if self.chain:  # a predicate may read the outputs of the segments before it
                table = PredicateTable()
                row = int(table.add(preds[0], member_scope))
                row = int(table.finish()[row])
                member = _Member(row, weight, compile_member(models[0], sub, member_scope), -1, sub.function, table)
                self.members.append(member)
                member_scope = self._chain_outputs(models[0], sub, member_scope, member)
                if member.outputs and tag_name(preds[0]) != "True":
                    # JPMML leaves the outputs of a segment that does not fire undefined, and fails where
                    # they are read (which depends on its evaluation order): only <True/> is compiled.
                    raise NotCompilable("a chained segment with OutputFields and a predicate other than True")
            elif tag_name(models[0]) == "TreeModel":
                own, has_target = check_model_common(models[0], sub, scope, top=False)
                trees.append(Tree(models[0], sub, own, has_target=has_target))
                row = self.segment_table.add(preds[0], scope)
                self.members.append(_Member(row, weight, None, len(trees) - 1, sub.function))
            else:
                row = self.segment_table.add(preds[0], scope)
                self.members.append(_Member(row, weight, compile_member(models[0], sub, scope), -1, sub.function))
        if not self.members:
            raise NotCompilable("Segmentation without segments")
        if not self.chain:
            remap = self.segment_table.finish()
            for member in self.members:
                member.row = int(remap[member.row])
        self.group = TreeGroup(trees, ctx) if trees else None
        nested_votes = [m for m in self.members if isinstance(m.model, Mining) and m.model.votes_for_none]
        if nested_votes:  # JPMML passes on "none won the vote" as a vote/probabilities, not as no prediction
            raise NotCompilable("a nested vote under missingPredictionTreatment continue")
        if self.method in ("average", "weightedAverage") and ctx.labels is not None:
            for tree in trees:  # JPMML fails to average a node without probabilities
                if any(not tree.distribution[i] for i in tree.final_capable()):
                    raise NotCompilable(f"{self.method} over a tree Node without a ScoreDistribution")
        self._weights = np.asarray([m.weight for m in self.members])

    def _member_context(self, model_elem: ET.Element) -> Context:
        function = model_elem.get("functionName")
        if function == self.ctx.function:
            return self.ctx
        if self.chain and function == "regression":  # e.g. a boosted classifier's decision function
            return Context("regression", self.ctx.target, None)
        raise NotCompilable(f"a {function!r} segment in a {self.ctx.function} {self.method}")

    @staticmethod
    def _chain_outputs(model_elem: ET.Element, sub: Context, scope: Scope, member: _Member) -> Scope:
        """The scope of the next segments: ``scope`` plus the OutputFields of ``model_elem``."""
        output = find_child(model_elem, "Output")
        if output is None:
            return scope
        getters = {}
        for of in child_elements(output):
            feature = of.get("feature", "predictedValue")
            if tag_name(of) != "OutputField" or of.get("dataType", "double") != "double" or child_elements(of):
                raise NotCompilable("a chained OutputField must be a plain double")
            if feature == "predictedValue" and sub.labels is None:
                kind, label = "value", -1
            elif feature == "probability" and sub.labels is not None and of.get("value") is not None:
                kind, label = "prob", sub.labels.index(of.get("value"))
            else:
                raise NotCompilable(f"chained OutputField feature {feature!r}")
            key = object()  # a cache slot of its own
            member.outputs.append((key, kind, label))
            getters[of.get("name")] = lambda env, key=key: env.cache[key]
        return Scope(scope, getters)

    def finish(self, n_labels: int) -> None:
        """Finish every member."""
        self._n_labels = n_labels
        if self.group is not None:
            self.group.finish(n_labels)
        for member in self.members:
            if member.model is not None:
                member.model.finish(n_labels if member.function == "classification" else 0)
        self._rows = np.asarray([m.row for m in self.members], dtype=np.intp)
        # Every member a tree of the group, in order: their results are one gather of the node arrays.
        self._forest = [m.tree for m in self.members] == list(range(len(self.members)))
        self._all_fire = bool(np.all(self._rows == 0))  # every segment's predicate is <True/>

    def predicate_rows(self) -> int:
        """The predicate rows of the segments (see ``models.predicate_rows``)."""
        return self.segment_table.rows + sum(m.table.rows for m in self.members if m.table is not None)

    def evaluate(self, env: Env) -> Result:
        """The combined prediction of the fired segments: a value, or a label and class probabilities.

        ``failed`` marks the rows JPMML fails on: where a fired member fails, and
        where every fired member was skipped (but for a sum, which is then 0).
        """
        if self.chain:
            return self._evaluate_chain(env)
        n = env.rows
        if self._all_fire:
            fired = np.ones((len(self.members), n), dtype=bool)
        else:
            fired = self.segment_table.evaluate(env)[0][self._rows]
        final = self.group.final_nodes(env) if self.group is not None else None
        results = [] if self._forest else [self._result(m, env, final) for m in self.members]
        stacked = self._stacked(results, final)
        null = stacked.label < 0 if stacked.label is not None else np.isnan(stacked.value)  # type: ignore[arg-type]
        failures = np.zeros(fired.shape, dtype=bool)
        for i, result in enumerate(results):
            if result.failed is not None:
                failures[i] = result.failed
        if self.method == "selectFirst":  # skipSegment passes over a member without a prediction
            candidates = fired & ~null if self.treatment == "skipSegment" else fired
            first = np.argmax(candidates, axis=0)
            # JPMML stops at the member it selects: only the members up to it may fail
            tried = fired & (np.arange(len(self.members))[:, None] <= first[None, :])
            failed = (failures & tried).any(axis=0)
            picked = _take(stacked, first, n)
            return ensemble.failed_rows(ensemble.null_rows(picked, ~candidates.any(axis=0)), failed)
        failed = (failures & fired).any(axis=0)
        used = fired & ~null
        missing = (fired & null).any(axis=0)
        voting = self.method in ("majorityVote", "weightedMajorityVote")
        if self.treatment == "skipSegment" or (self.treatment == "continue" and voting):
            missing = np.zeros(n, dtype=bool)
            if self.method not in ("sum", "weightedSum"):
                failed |= fired.any(axis=0) & ~used.any(axis=0)  # JPMML: empty classification, undefined result
        if self.ctx.function == "regression":
            with np.errstate(all="ignore"):
                value = ensemble.regression(self.method, stacked.value, used, self._weights, fired)
            combined = Result(value=value)
        elif voting:
            weights = self._weights if self.method == "weightedMajorityVote" else None
            # Under continue, JPMML counts the members without a prediction as votes for "none".
            null_votes = ensemble.weighted_sum(np.ones(null.shape), fired & null, weights)
            if self.treatment != "continue":
                null_votes = np.zeros(n)
            combined = ensemble.votes(stacked.label, used, weights, self._n_labels, null_votes)
        else:
            combined = ensemble.average(self.method, stacked.probs, stacked.rank, used, self._weights)
        return ensemble.failed_rows(ensemble.null_rows(combined, missing), failed)

    def _stacked(self, results: list[Result], final: np.ndarray | None) -> Result:
        """The members' results stacked, [members, rows, ...]; a plain forest in one gather."""
        group = self.group
        if self._forest and group is not None and final is not None:
            if self.ctx.function == "regression":
                return Result(value=group.node_value[final])
            return Result(label=group.node_label[final], probs=group.node_probs[final], rank=group.node_rank[final])
        if self.ctx.function == "regression":
            return Result(value=np.stack([r.value for r in results]))
        return Result(
            label=np.stack([r.label for r in results]),
            probs=np.stack([r.probs for r in results]),
            rank=np.stack([r.rank for r in results]),
        )

    def _result(self, member: _Member, env: Env, final: np.ndarray | None) -> Result:
        if member.model is None:
            group = self.group
            assert group is not None and final is not None
            node = final[member.tree]
            if member.function == "regression":
                return Result(value=group.node_value[node])
            return Result(label=group.node_label[node], probs=group.node_probs[node], rank=group.node_rank[node])
        result = member.model.evaluate(env)
        if member.function == "classification":
            probs = np.asarray(result.probs, dtype=np.float64)
            rank = result.rank if result.rank is not None else default_rank(probs)
            null = np.asarray(result.label) < 0
            rank = np.where(null[:, None], NO_RANK, rank)
            result = Result(
                label=np.asarray(result.label), probs=np.nan_to_num(probs, nan=0.0), rank=rank, failed=result.failed
            )
        return result

    def _evaluate_chain(self, env: Env) -> Result:
        """Each segment in order, its outputs stored for the next; the last fired one of our function wins."""
        n = env.rows
        chosen = np.full(n, -1)
        missing = np.zeros(n, dtype=bool)
        failed = np.zeros(n, dtype=bool)
        foreign_last = np.zeros(n, dtype=bool)
        if self.ctx.function == "regression":
            template = Result(value=np.full(n, np.nan))
        else:
            template = Result(label=np.full(n, -1), probs=np.zeros((n, self._n_labels)),
                              rank=np.full((n, self._n_labels), NO_RANK, dtype=np.int64))  # fmt: skip
        results: list[Result] = []
        for i, member in enumerate(self.members):
            fired = member.table.evaluate(env)[0][member.row]  # type: ignore[union-attr]
            result = self._result(member, env, None)
            results.append(result if member.function == self.ctx.function else template)
            null = _is_null(result)
            if result.failed is not None:
                failed |= fired & result.failed
            if self.treatment == "returnMissing":
                missing |= fired & null
            elif member.outputs:  # JPMML fails on an output it cannot give
                failed |= fired & null
            for key, kind, label in member.outputs:
                value = result.value if kind == "value" else result.probs[:, label]  # type: ignore[index]
                env.cache[key] = np.where(fired & ~null, value, np.nan)  # type: ignore[index]
            if member.function == self.ctx.function:
                chosen = np.where(fired, i, chosen)
                foreign_last = foreign_last & ~fired
            else:  # JPMML would hand on this member's result (of the other function): not reproduced
                foreign_last = foreign_last | fired
        failed |= foreign_last
        picked = _pick([template, *results], chosen + 1, n)
        return ensemble.failed_rows(ensemble.null_rows(picked, missing), failed)


def _check_selectable(elem: ET.Element) -> None:
    """Refuse a member whose own result JPMML does not pass on when selectFirst or modelChain selects it."""
    schema = find_child(elem, "MiningSchema")
    fields = child_elements(schema) if schema is not None else []
    if not any(f.get("usageType") in ("target", "predicted") for f in fields):
        raise NotCompilable("a member without a target selected as a whole")  # JPMML: no prediction


def _is_null(result: Result) -> np.ndarray:
    """Where a member gave no prediction."""
    if result.label is not None:
        return np.asarray(result.label) < 0
    return np.isnan(result.value)  # type: ignore[arg-type]


def _take(stacked: Result, which: np.ndarray, n: int) -> Result:
    """Per row, the fields of member ``which[row]`` of ``stacked`` results [members, rows, ...]."""
    rows = np.arange(n)
    if stacked.label is None:
        return Result(value=stacked.value[which, rows])  # type: ignore[index]
    return Result(label=stacked.label[which, rows], probs=stacked.probs[which, rows], rank=stacked.rank[which, rows])  # type: ignore[index]


def _pick(results: list[Result], which: np.ndarray, n: int) -> Result:
    """Per row, the fields of ``results[which[row]]``."""
    if results[0].label is None:
        return _take(Result(value=np.stack([r.value for r in results])), which, n)
    stacked = Result(
        label=np.stack([np.asarray(r.label) for r in results]),
        probs=np.stack([r.probs for r in results]),
        rank=np.stack([r.rank for r in results]),
    )
    return _take(stacked, which, n)
