"""Reading PMML elements: tag names, children, numbers, and the refusal :class:`NotCompilable`.

Every module of the compiler reads the document through these helpers, which
ignore namespaces (any PMML version) and ``Extension`` elements (which never
change scoring), and parse numbers as Java does, so that anything pypmml would
read differently is refused rather than guessed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET


class NotCompilable(Exception):
    """The PMML uses something this compiler does not implement; score it with pypmml instead."""


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")

#: An integer as PMML4S accepts one: optional sign, digits, nothing around them.
INTEGER_TEXT = re.compile(r"^[+-]?\d+$")


def tag_name(elem: ET.Element) -> str:
    """The element's tag without its namespace; "" for comments and processing instructions."""
    return elem.tag.rsplit("}", 1)[-1] if isinstance(elem.tag, str) else ""


def child_elements(elem: ET.Element) -> list[ET.Element]:
    """Child elements, without Extension (which never changes scoring)."""
    return [c for c in elem if isinstance(c.tag, str) and tag_name(c) != "Extension"]


def allow_only(elem: ET.Element, allowed: set[str]) -> None:
    """Raise :class:`NotCompilable` if ``elem`` has a child element whose tag is not in ``allowed``."""
    for child in child_elements(elem):
        if tag_name(child) not in allowed:
            raise NotCompilable(f"<{tag_name(child)}> inside <{tag_name(elem)}> is not supported")


def find_child(elem: ET.Element, name: str) -> ET.Element | None:
    """The first child element tagged ``name``, or None."""
    for child in child_elements(elem):
        if tag_name(child) == name:
            return child
    return None


def parse_number(text: str | None, what: str) -> float:
    """A double as Java's ``Double.parseDouble`` reads plain decimal text.

    Raises:
        NotCompilable: ``text`` is missing or not plain decimal text; ``what``
            names it in the message.
    """
    if text is None or not _NUMBER.match(text):
        raise NotCompilable(f"{what}: {text!r} is not a plain decimal number")
    return float(text)


def number_attribute(elem: ET.Element, name: str, default: float | None = None) -> float:
    """The attribute ``name`` of ``elem`` as a double, or ``default`` when absent.

    Raises:
        NotCompilable: the attribute is absent and there is no default, or it is
            not plain decimal text.
    """
    raw = elem.get(name)
    if raw is None:
        if default is None:
            raise NotCompilable(f"<{tag_name(elem)}> lacks {name}")
        return default
    return parse_number(raw, f"<{tag_name(elem)} {name}>")
