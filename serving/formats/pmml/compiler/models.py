"""The model dispatcher: compiles a RegressionModel, TreeModel or MiningModel element to a ``Model``.

It is the one module that knows every model family, so
:mod:`~serving.formats.pmml.compiler.mining` receives it as a function rather
than importing it. It also answers how many predicate rows a batch row costs
when scoring a compiled model (which sizes the scoring chunks).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from serving.formats.pmml.compiler.base import Context, Model
from serving.formats.pmml.compiler.elements import NotCompilable, tag_name
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.fields import check_model_common
from serving.formats.pmml.compiler.general_regression import GeneralRegression
from serving.formats.pmml.compiler.mining import Mining
from serving.formats.pmml.compiler.naive_bayes import NaiveBayes
from serving.formats.pmml.compiler.neighbors import Neighbors
from serving.formats.pmml.compiler.neural import Neural
from serving.formats.pmml.compiler.regression import Regression
from serving.formats.pmml.compiler.svm import Svm
from serving.formats.pmml.compiler.targets import apply_targets
from serving.formats.pmml.compiler.trees import Tree, TreeGroup


def compile_model(elem: ET.Element, ctx: Context, scope: Scope, *, top: bool) -> Model:
    """Compile the model element ``elem`` in ``scope``; ``top`` for the document's own model, not a segment's.

    Raises:
        NotCompilable: the element, or anything in it, is not supported.
    """
    tag = tag_name(elem)
    own, has_target = check_model_common(elem, ctx, scope, top=top, allow_targets=True)
    if not has_target and tag != "TreeModel" and (top or ctx.labels is not None):  # a sub-regression may omit it
        raise NotCompilable(f"<{tag}> without a target")
    if tag == "RegressionModel":
        model: Model = Regression(elem, ctx, own)
    elif tag == "TreeModel":
        model = TreeGroup([Tree(elem, ctx, own, has_target=has_target)], ctx)
    elif tag == "MiningModel":
        model = Mining(elem, ctx, own, _compile_member)
    elif tag == "NeuralNetwork":
        model = Neural(elem, ctx, own)
    elif tag == "NaiveBayesModel":
        model = NaiveBayes(elem, ctx, own)
    elif tag == "SupportVectorMachineModel":
        model = Svm(elem, ctx, own)
    elif tag == "NearestNeighborModel":
        model = Neighbors(elem, ctx, own)
    elif tag == "GeneralRegressionModel":
        model = GeneralRegression(elem, ctx, own)
    else:
        raise NotCompilable(f"<{tag}> is not compiled")
    model = apply_targets(elem, ctx, model)  # the element's Targets, if any (a family's allow_only may refuse them)
    return model


def _compile_member(elem: ET.Element, ctx: Context, scope: Scope) -> Model:
    return compile_model(elem, ctx, scope, top=False)


def predicate_rows(model: Model) -> int:
    """Roughly how many [rows]-long arrays scoring ``model`` holds at once, per batch row."""
    if isinstance(model, TreeGroup):  # the predicate masks, then per inner node its child masks and next node
        return 2 * model.table.rows + sum(len(t.children) for t in model.trees) * 10
    if isinstance(model, Mining):  # its segments' predicates, its trees, its other members, their results
        rows = model.predicate_rows() + (predicate_rows(model.group) if model.group is not None else 0)
        return rows + sum(predicate_rows(m.model) + 2 for m in model.members if m.model is not None)
    return 1
