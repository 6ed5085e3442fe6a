"""Outputs: a model's Output element, as PMML4S lays out its output series and types its prediction.

PMML4S hands a parent MiningModel each member's outputs as a series, its
OutputFields in order when it has an Output element, else a default layout
(:func:`default_layout`); pypmml's top-level result also carries the default
probability fields the Output lacks. The series are described as
:data:`~serving.formats.pmml.compiler.base.Slot` values.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from serving.formats.pmml.compiler.base import Context, Slot
from serving.formats.pmml.compiler.elements import NotCompilable, child_elements, find_child, tag_name

_FEATURE_SLOTS = {"predictedValue": "pred", "probability": "prob", "confidence": "conf", "entityId": "id"}


def output_layout(elem: ET.Element, ctx: Context, *, final_only: bool) -> list[Slot] | None:
    """The OutputFields of ``elem`` as slots (None without an Output element)."""
    output = find_child(elem, "Output")
    if output is None:
        return None
    layout: list[Slot] = []
    for of in child_elements(output):
        if tag_name(of) != "OutputField":
            raise NotCompilable(f"<{tag_name(of)}> inside Output")
        if final_only and of.get("isFinalResult", "true") != "true":
            continue
        kind = _FEATURE_SLOTS.get(of.get("feature", "predictedValue"), "other")
        if kind == "prob":
            if ctx.labels is None:
                raise NotCompilable("probability output on a regression model")
            value = of.get("value")
            layout.append(("prob", None if value is None else ctx.labels.index(value)))
        else:
            layout.append((kind,))
    return layout


def probability_labels(layout: list[Slot]) -> list[int]:
    """The labels of the probabilities of named classes in ``layout``, in order."""
    return [slot[1] for slot in layout if slot[0] == "prob" and slot[1] is not None]


def default_layout(ctx: Context) -> list[Slot]:
    """PMML4S's default outputs of a model: the prediction, then for a classifier every class's probability."""
    if ctx.labels is None:
        return [("pred",)]
    return [("pred",), ("prob", None), *(("prob", c) for c in range(ctx.n_classes))]


def prediction_datatype(elem: ET.Element, target_spec: ET.Element, function: str) -> str | None:
    """The dataType pypmml reports the prediction in; refuse one that would convert our label or value."""
    output = find_child(elem, "Output")
    for of in child_elements(output) if output is not None else []:
        if of.get("feature", "predictedValue") != "predictedValue" or of.get("isFinalResult", "true") != "true":
            continue
        datatype = of.get("dataType")
        if function == "regression" and datatype != "double":
            raise NotCompilable(f"predicted value declared as {datatype!r}")
        if function == "classification" and datatype not in (target_spec.get("dataType"), "string"):
            raise NotCompilable(f"predicted label declared as {datatype!r}")
        return datatype
    return target_spec.get("dataType")
