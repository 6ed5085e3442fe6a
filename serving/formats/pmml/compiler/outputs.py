"""Outputs: the type a model's Output declares for its prediction.

The served result is the prediction and every class's probability (see
:mod:`.document`), whatever the Output declares; a parent MiningModel reads
its members' results by label (:mod:`.ensemble`), and a modelChain's members
read the OutputFields of the segments before them (:mod:`.mining`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from serving.formats.pmml.compiler.elements import NotCompilable, child_elements, find_child


def prediction_datatype(elem: ET.Element, target_spec: ET.Element, function: str) -> str | None:
    """The dataType the Output declares for the prediction; refuse one that would convert our label or value."""
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
