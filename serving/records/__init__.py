"""Record types: how records of a data type decode, which features they carry, what a probe row is.

:mod:`serving.records.base` says what a record type is; :mod:`serving.records.wine`
is the bundled example and, for now, the only one: every data type travels as
a ``WineRecord``. Generic code asks :func:`for_data_type` and never names wine.
"""

from __future__ import annotations

from serving.records.base import RecordType

#: The data type commands use when none is given: the bundled example.
DEFAULT_DATA_TYPE = "wine"


def for_data_type(data_type: str) -> RecordType:
    """The record type that ``data_type``'s records have (today the wine one, for every data type)."""
    from serving.records.wine import WINE

    return WINE
