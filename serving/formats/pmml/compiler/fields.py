"""Fields: the DataDictionary and the MiningSchemas, i.e. the inputs, the target and its labels.

The inputs are the active MiningFields of the top-level model; they become the
columns :meth:`~serving.formats.pmml.compiler.document.CompiledPmml.predict`
takes, in MiningSchema order, prepared by :mod:`.inputs` (types, missing and
invalid values, the top-level MiningField treatments). A classification
target must be categorical and list its valid Values (the
:class:`~serving.formats.pmml.compiler.labels.Labels`); a regression target
must be a continuous double or integer. A sub-model's MiningFields may not
treat values (that is not implemented); a model's Targets are allowed only
where the caller applies them (``allow_targets``, see :mod:`.targets`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from serving.formats.pmml.compiler.base import Context
from serving.formats.pmml.compiler.elements import NotCompilable, allow_only, child_elements, find_child, tag_name
from serving.formats.pmml.compiler.expressions import Scope
from serving.formats.pmml.compiler.labels import Labels


def data_fields(root: ET.Element) -> dict[str | None, ET.Element]:
    """The DataFields of the document's DataDictionary, by name."""
    dictionary = find_child(root, "DataDictionary")
    if dictionary is None:
        raise NotCompilable("no DataDictionary")
    allow_only(dictionary, {"DataField", "Taxonomy"})
    return {f.get("name"): f for f in child_elements(dictionary) if tag_name(f) == "DataField"}


def top_level_fields(model_elem: ET.Element, fields: dict[str | None, ET.Element]) -> tuple[list[str | None], str]:
    """The input names (active MiningFields, in order) and the target name of the top-level model.

    Raises:
        NotCompilable: the model has no MiningSchema, or not exactly one target
            that is a DataField.
    """
    schema = find_child(model_elem, "MiningSchema")
    if schema is None:
        raise NotCompilable("the model has no MiningSchema")
    mining = [mf for mf in child_elements(schema) if tag_name(mf) == "MiningField"]
    input_names = [mf.get("name") for mf in mining if mf.get("usageType", "active") == "active"]
    targets = [mf.get("name") for mf in mining if mf.get("usageType") in ("target", "predicted")]
    if len(targets) != 1 or targets[0] not in fields:
        raise NotCompilable("the model must have exactly one target DataField")
    return input_names, targets[0]  # type: ignore[return-value]


def target_labels(target_spec: ET.Element, function: str) -> Labels | None:
    """The classification target's frozen labels (None for regression), once the target is checked."""
    labels = None
    if function == "classification":
        if target_spec.get("optype") not in ("categorical",):
            raise NotCompilable("the classification target is not categorical")
        values = [v for v in child_elements(target_spec) if tag_name(v) == "Value"]
        if (
            not values
            or len(values) != len(child_elements(target_spec))
            or any(v.get("property", "valid") != "valid" for v in values)
        ):
            raise NotCompilable("the classification target must list its valid Values, and only them")
        labels = Labels(target_spec.get("dataType", "string"))
        for v in values:
            labels.index(v.get("value"))
        if len(labels) != len(values):
            raise NotCompilable("the target repeats a Value")
        labels.frozen = True
    elif target_spec.get("optype") != "continuous" or target_spec.get("dataType") not in ("double", "integer"):
        # (a float target would have pypmml round every prediction to float32)
        raise NotCompilable("the regression target is not a continuous double or integer")
    return labels


#: MiningField attributes a sub-model may not set: treating values there is not implemented.
#: Each attribute with the values that change nothing (None: the attribute is absent).
_SUB_MODEL_TREATMENTS = {
    "outliers": (None, "asIs"),
    "missingValueTreatment": (None, "asIs", "asMean", "asMode", "asMedian", "asValue"),
    "missingValueReplacement": (None,),
    "invalidValueTreatment": (None, "returnInvalid"),
    "invalidValueReplacement": (None,),
}


def check_model_common(
    elem: ET.Element, ctx: Context, scope: Scope, *, top: bool, allow_targets: bool = False
) -> tuple[Scope, bool]:
    """Validate the parts every model element has; return the model's own scope and whether it names the target.

    A sub-model may omit the target (JPMML-SparkML's forest trees do); PMML4S
    then infers its classes from the model itself, which only a tree supports here.
    ``allow_targets``: the caller applies the element's Targets (else they are refused).
    """
    if elem.get("functionName") != ctx.function:
        raise NotCompilable(
            f"<{tag_name(elem)}> functionName {elem.get('functionName')!r} differs from {ctx.function!r}"
        )
    if elem.get("isScorable", "true") != "true":
        raise NotCompilable("model is not scorable")
    if find_child(elem, "Targets") is not None and not allow_targets:
        raise NotCompilable("Targets is not supported here")
    schema = find_child(elem, "MiningSchema")
    if schema is None:
        raise NotCompilable(f"<{tag_name(elem)}> has no MiningSchema")
    allow_only(schema, {"MiningField"})
    targets = []
    for mf in child_elements(schema):
        usage = mf.get("usageType", "active")
        name = mf.get("name")
        if usage in ("target", "predicted"):
            targets.append(name)
            continue
        if usage in ("supplementary", "frequencyWeight", "analysisWeight"):
            continue
        if usage != "active":
            raise NotCompilable(f"MiningField usageType {usage!r}")
        if not top and any(mf.get(a) not in harmless for a, harmless in _SUB_MODEL_TREATMENTS.items()):
            # (the top-level model's treatments are applied to the inputs by .inputs)
            raise NotCompilable(f"MiningField {name!r} of a sub-model treats values")
        scope.resolve(name)
    if targets != [ctx.target] and (top or targets):
        raise NotCompilable(f"<{tag_name(elem)}> must name the target {ctx.target!r} (names {targets})")
    return scope.with_transformations(find_child(elem, "LocalTransformations")), bool(targets)
