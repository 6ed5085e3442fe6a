"""PMML4S's Scala semantics that decide a predicted class: label hashes, map order, ``maxBy``.

PMML4S (the engine inside pypmml) picks an ensemble's or a regression
classifier's class with Scala's ``maxBy`` over an immutable ``Map``: the first
maximum in the map's iteration order, NaN above every number. Maps of up to
four entries iterate in insertion order, larger ones in Scala 2.13's CHAMP hash
order, which :func:`scala_map_order` reproduces from the labels' Scala hashes
(:func:`scala_hash`, MurmurHash3 as Scala applies it to a case class).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _mix(h: int, data: int) -> int:
    k = (data * 0xCC9E2D51) & _MASK
    k = (_rotl(k, 15) * 0x1B873593) & _MASK
    h = _rotl(h ^ k, 13)
    return (h * 5 + 0xE6546B64) & _MASK


def _avalanche(h: int) -> int:
    h &= _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def _java_string_hash(text: str) -> int:
    h = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & _MASK
    return h


def _java_long_hash(value: int) -> int:
    value &= (1 << 64) - 1
    return (value ^ (value >> 32)) & _MASK


def _scala_long_hash(value: int) -> int:
    return value & _MASK if -(1 << 31) <= value < (1 << 31) else _java_long_hash(value)


def _java_d2l(value: float) -> int:
    """Java's saturating ``(long) d``."""
    if math.isnan(value):
        return 0
    if value >= 2.0**63:
        return (1 << 63) - 1
    if value <= -(2.0**63):
        return -(1 << 63)
    return int(value)


def _scala_double_hash(value: float) -> int:
    as_int = max(min(_java_d2l(value), (1 << 31) - 1), -(1 << 31))
    if as_int == value:
        return as_int & _MASK
    as_long = _java_d2l(value)
    if as_long == value:
        return _java_long_hash(as_long)
    with np.errstate(over="ignore"):
        as_float = np.float32(value)  # Java's (float) d: round to nearest, overflow to infinity
    if float(as_float) == value:
        return int(as_float.view(np.uint32))
    bits = 0x7FF8000000000000 if math.isnan(value) else struct.unpack(">Q", struct.pack(">d", value))[0]
    return _java_long_hash(bits)


#: PMML dataType -> (PMML4S DataVal case class, kind of our canonical key)
LABEL_TYPES = {"string": "StringVal", "integer": "LongVal", "double": "DoubleVal"}


def scala_hash(key: tuple[str, object]) -> int:
    """``##`` of the PMML4S ``DataVal`` for a canonical label key (a Scala 2.13 case-class hash)."""
    kind, value = key
    if kind == "string":
        element = _java_string_hash(value)  # type: ignore[arg-type]
    elif kind == "integer":
        element = _scala_long_hash(value)  # type: ignore[arg-type]
    else:
        element = _scala_double_hash(value)  # type: ignore[arg-type]
    h = _mix(0xCAFEBABE, _java_string_hash(LABEL_TYPES[kind]))
    h = _mix(h, element)
    return _avalanche(h ^ 1)


def _improve(h: int) -> int:
    """``scala.collection.Hashing.improve``, which spreads hashes over the CHAMP trie."""
    h &= _MASK
    h = (h + (~(h << 9) & _MASK)) & _MASK
    h ^= h >> 14
    h = (h + (h << 4)) & _MASK
    return h ^ (h >> 10)


def scala_map_order(keys: Sequence[tuple[str, object]]) -> list[int]:
    """Positions of ``keys`` in the iteration order of a Scala 2.13 immutable Map built from them in order.

    Up to four entries the map is a ``Map1``..``Map4`` that keeps insertion
    order; from five on it is a CHAMP ``HashMap``, iterated node by node: a
    node's own entries by their 5-bit hash slice, then its sub-nodes likewise.
    """
    if len(keys) <= 4:
        return list(range(len(keys)))

    def walk(items: list[tuple[int, int]], shift: int) -> list[int]:
        if shift >= 32:  # a full-hash collision node keeps insertion order
            return [i for i, _ in items]
        buckets: dict[int, list[tuple[int, int]]] = {}
        for item in items:
            buckets.setdefault((item[1] >> shift) & 31, []).append(item)
        order = [b[0][0] for _, b in sorted(buckets.items()) if len(b) == 1]
        for _, bucket in sorted(buckets.items()):
            if len(bucket) > 1:
                order += walk(bucket, shift + 5)
        return order

    return walk([(i, _improve(scala_hash(k))) for i, k in enumerate(keys)], 0)


def java_greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``java.lang.Double.compare(a, b) > 0``: Scala's default Double ordering, NaN above everything."""
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        plain = (a > b) | ((a == 0.0) & (b == 0.0) & ~np.signbit(a) & np.signbit(b))
    return (a_nan & ~b_nan) | (~a_nan & ~b_nan & plain)


def max_by(values: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Per row of [N, K] ``values``, the column Scala's ``maxBy`` picks when the map iterates columns in ``order``.

    That is the first maximum in ``order`` under ``java.lang.Double.compare``:
    NaN above everything, -0.0 below 0.0. ``np.argmax`` agrees (it returns the
    first NaN, else the first maximum) except on signed zeros, done the slow way.
    """
    ordered = values[:, order]
    if not np.any((ordered == 0.0) & np.signbit(ordered)):
        return np.asarray(order, dtype=np.int64)[np.argmax(ordered, axis=1)]
    best = np.full(len(values), order[0], dtype=np.int64)
    best_value = values[:, order[0]].copy()
    for i in order[1:]:
        better = java_greater(values[:, i], best_value)
        best[better] = i
        best_value[better] = values[better, i]
    return best
