"""The model dispatcher: compiles a RegressionModel, TreeModel or MiningModel element to a ``Model``.

It is the one module that knows every model family, so
:mod:`~serving.formats.pmml.compiler.mining` receives it as a function rather
than importing it. It also answers questions about a compiled model as a whole:
the default probability outputs pypmml adds at the top level, and how many
predicate rows a batch row costs (which sizes the scoring chunks).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from serving.formats.pmml.compiler.base import Context, Model
from serving.formats.pmml.compiler.elements import NotCompilable, tag_name
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.fields import check_model_common
from serving.formats.pmml.compiler.mining import Mining
from serving.formats.pmml.compiler.outputs import output_layout, probability_labels
from serving.formats.pmml.compiler.regression import Regression
from serving.formats.pmml.compiler.trees import Tree, TreeGroup


def compile_model(elem: ET.Element, ctx: Context, scope: Scope, *, top: bool) -> Model:
    """Compile the model element ``elem`` in ``scope``; ``top`` for the document's own model, not a segment's.

    Raises:
        NotCompilable: the element, or anything in it, is not supported.
    """
    tag = tag_name(elem)
    own, has_target = check_model_common(elem, ctx, scope, top=top)
    if not has_target and tag != "TreeModel":
        raise NotCompilable(f"<{tag}> without a target")
    if tag == "RegressionModel":
        model: Model = Regression(elem, ctx, own)
    elif tag == "TreeModel":
        model = TreeGroup([Tree(elem, ctx, own, has_target=has_target)], ctx)
    elif tag == "MiningModel":
        model = Mining(elem, ctx, own, _compile_member)
    else:
        raise NotCompilable(f"<{tag}> is not compiled")
    declared = output_layout(elem, ctx, final_only=False)
    if declared is not None:  # a sub-model (no supplement output) shows only its Output
        model.layout = declared
    return model


def _compile_member(elem: ET.Element, ctx: Context, scope: Scope) -> Model:
    return compile_model(elem, ctx, scope, top=False)


def top_level_defaults(model: Model, ctx: Context) -> list[int]:
    """Labels of the default probability outputs pypmml adds to a top-level model."""
    if isinstance(model, TreeGroup):
        return probability_labels(model.trees[0].default_layout())
    return list(range(ctx.n_classes))


def predicate_rows(model: Model) -> int:
    """Roughly how many [rows]-long arrays scoring ``model`` holds at once, per batch row."""
    if isinstance(model, TreeGroup):  # the predicate masks, then per inner node its child masks and next node
        return 2 * model.table.rows + sum(len(t.children) for t in model.trees) * 10
    if isinstance(model, Mining):
        rows = model.segment_table.rows + (predicate_rows(model.group) if model.group is not None else 0)
        return rows + sum(predicate_rows(m) for _, _, m in model.segments if not isinstance(m, tuple))
    return 1
