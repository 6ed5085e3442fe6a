"""Byte mutators as hypothesis strategies: what a broken producer, a flipped bit or a hostile client sends.

Every strategy starts from valid bytes (a seed) and breaks them one way:
truncation, bit flips, a field header with a huge length, an over-long
varint, a known field number with the wrong wire type, a spliced run of
random bytes; or it is empty, or random bytes outright. :func:`expect_typed`
is the one assertion every decoder test shares: only a
:class:`~serving.errors.ServingError` with a reason may leave a decoder.

``MODELSERVING_FUZZ_SCALE`` multiplies every test's ``max_examples``
(``test_backends`` lowers it for its second run, under the pure-Python
protobuf backend).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import settings
from hypothesis import strategies as st

from serving.errors import ServingError

SCALE = float(os.environ.get("MODELSERVING_FUZZ_SCALE", "1"))

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
#: Every wire type a tag can spell: 0-5 are defined (3 and 4 the deprecated groups), 6 and 7 are invalid.
WIRE_TYPES = range(8)
#: Length prefixes no message can honour: around 2**31 (a signed int's edge), 2**32, 2**63, the varint maximum.
HUGE_LENGTHS = (2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)

#: Doubles that break naive checks: NaN (quiet, signalling, negative), the infinities, the extremes, -0.0.
SPECIAL_DOUBLES = (
    math.nan,
    -math.nan,
    struct.unpack("<d", struct.pack("<Q", 0x7FF0_0000_0000_0001))[0],  # a signalling NaN
    math.inf,
    -math.inf,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    -0.0,
    1e300,
)
#: Any double, weighted toward the special ones.
doubles = st.one_of(st.sampled_from(SPECIAL_DOUBLES), st.floats(), st.floats(allow_nan=False, allow_infinity=False))


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic settings for CI: derandomized, no example database, no deadline (CI machines are slow)."""
    return settings(
        max_examples=max(3, round(max_examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
    )


def expect_typed(decoder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``decoder(*args, **kwargs)``: its value, or the :class:`ServingError` it raised (with a non-empty reason).

    Any other exception fails the test, naming the decoder and the exception.
    """
    try:
        return decoder(*args, **kwargs)
    except ServingError as exc:
        assert isinstance(exc.reason, str) and exc.reason, f"{type(exc).__name__} without a reason"
        assert str(exc), f"{type(exc).__name__} without a message"
        return exc
    except Exception as exc:  # the bug this suite hunts: an untyped error escaping a decoder
        name = getattr(decoder, "__qualname__", repr(decoder))
        pytest.fail(f"{type(exc).__name__} escaped {name}: {str(exc)[:300]}")


# --------------------------------------------------------------------------- the protobuf wire format


def varint(value: int) -> bytes:
    """``value`` (0 to 2**64 - 1) as a base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def tag(field_number: int, wire_type: int) -> bytes:
    """A field header."""
    return varint((field_number << 3) | wire_type)


def overlong_varint(continuations: int, fill: int = 0x80) -> bytes:
    """A varint of ``continuations`` bytes with the continuation bit, then a last one: over 10 bytes is invalid."""
    return bytes([fill | 0x80]) * continuations + b"\x01"


def wire_type_of(field: FieldDescriptor) -> int:
    """The wire type ``field``'s values are written with (packed repeated scalars: also ``LEN``)."""
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64):
        return I64
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32):
        return I32
    if kind in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE):
        return LEN
    if kind == FieldDescriptor.TYPE_GROUP:
        return SGROUP
    return VARINT


def field_boundaries(data: bytes) -> list[int]:
    """Offsets where a top-level field of valid message bytes starts (and the end): where an insert is a field."""
    offsets, pos = [0], 0
    try:
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            kind = key & 7
            if kind == VARINT:
                _, pos = _read_varint(data, pos)
            elif kind == I64:
                pos += 8
            elif kind == I32:
                pos += 4
            elif kind == LEN:
                length, pos = _read_varint(data, pos)
                pos += length
            else:
                break
            offsets.append(min(pos, len(data)))
    except IndexError:  # not protobuf (JSON, Avro): its ends are boundaries enough
        pass
    return sorted({*offsets, len(data)})


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


@st.composite
def _value_for(draw: st.DrawFn, wire_type: int) -> bytes:
    """Bytes after a tag of ``wire_type``: well-formed, lying or missing."""
    if wire_type == VARINT:
        return draw(st.one_of(st.integers(0, 2**64 - 1).map(varint), st.integers(10, 20).map(overlong_varint)))
    if wire_type == I64:
        return draw(st.one_of(doubles.map(lambda x: struct.pack("<d", x)), st.binary(min_size=0, max_size=8)))
    if wire_type == I32:
        return draw(st.binary(min_size=0, max_size=4))
    if wire_type == LEN:
        body = draw(st.binary(max_size=24))
        length = draw(st.one_of(st.just(len(body)), st.sampled_from(HUGE_LENGTHS), st.integers(0, 64)))
        return varint(length) + body
    if wire_type == SGROUP:
        return draw(st.sampled_from([b"", b"\x08\x01", b"\x0c", b"\x08\x01\x0c"]))
    return b""  # an end-group tag, or wire types 6 and 7: nothing can follow meaningfully


# --------------------------------------------------------------------------- mutators


@st.composite
def truncated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` cut short at any length (empty included)."""
    return seed[: draw(st.integers(0, max(0, len(seed) - 1)))]


@st.composite
def bit_flipped(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with one to eight bits flipped."""
    if not seed:
        return seed
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        bit = draw(st.integers(0, len(data) * 8 - 1))
        data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@st.composite
def _insert_at_field(draw: st.DrawFn, seed: bytes, inserted: bytes) -> bytes:
    """``inserted`` put into ``seed`` at a field boundary, mostly, or at any offset."""
    at = draw(st.one_of(st.sampled_from(field_boundaries(seed)), st.integers(0, len(seed))))
    return seed[:at] + inserted + seed[at:]


@st.composite
def huge_length(draw: st.DrawFn, seed: bytes, field_numbers: Sequence[int]) -> bytes:
    """A length-delimited field header (a known field number, or another) announcing up to 2**64 - 1 bytes."""
    number = draw(st.one_of(st.sampled_from(field_numbers), st.integers(1, 2**29 - 1)))
    header = tag(number, LEN) + varint(draw(st.sampled_from(HUGE_LENGTHS))) + draw(st.binary(max_size=16))
    return draw(_insert_at_field(seed, header))


@st.composite
def overlong(draw: st.DrawFn, seed: bytes, field_numbers: Sequence[int]) -> bytes:
    """An over-long varint (11 to 20 bytes) as a value, as a length, or as the tag itself."""
    long_one = overlong_varint(draw(st.integers(10, 20)), draw(st.sampled_from([0x80, 0xFF])))
    number = draw(st.sampled_from(field_numbers))
    inserted = draw(st.sampled_from([tag(number, VARINT) + long_one, tag(number, LEN) + long_one, long_one]))
    return draw(_insert_at_field(seed, inserted))


@st.composite
def wrong_wire_type(draw: st.DrawFn, seed: bytes, message: Descriptor) -> bytes:
    """A known field of ``message`` written with a wire type it does not have, then a value for that type."""
    field = draw(st.sampled_from(list(message.fields)))
    right = {wire_type_of(field)} | ({LEN} if field.label == FieldDescriptor.LABEL_REPEATED else set())
    wire_type = draw(st.sampled_from([w for w in WIRE_TYPES if w not in right]))
    return draw(_insert_at_field(seed, tag(field.number, wire_type) + draw(_value_for(wire_type))))


@st.composite
def spliced(draw: st.DrawFn, seed: bytes) -> bytes:
    """A run of ``seed`` replaced by random bytes (of another length, maybe)."""
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, len(seed)))
    return seed[:start] + draw(st.binary(max_size=16)) + seed[end:]


def mutated(seeds: st.SearchStrategy[bytes], message: Descriptor | None = None) -> st.SearchStrategy[bytes]:
    """Bytes from ``seeds`` broken by one mutator (or two in a row), empty bytes, or random bytes.

    ``message``: the protobuf type the seeds are, whose field numbers and
    wire types the header mutators use; None for seeds that are not protobuf.
    """
    numbers = [f.number for f in message.fields] if message is not None else list(range(1, 16))

    def once(seed: bytes) -> st.SearchStrategy[bytes]:
        options = [truncated(seed), bit_flipped(seed), huge_length(seed, numbers), overlong(seed, numbers)]
        options.append(spliced(seed))
        if message is not None:
            options.append(wrong_wire_type(seed, message))
        return st.one_of(options)

    broken = seeds.flatmap(once)
    twice = broken.flatmap(once)
    return st.one_of(broken, twice, st.just(b""), st.binary(max_size=256))


def exhaustive(seed: bytes) -> list[bytes]:
    """Every truncation of ``seed`` and every single-bit flip of it: cheap for a record, and no luck needed."""
    flips = []
    for bit in range(len(seed) * 8):
        data = bytearray(seed)
        data[bit // 8] ^= 1 << (bit % 8)
        flips.append(bytes(data))
    return [seed[:n] for n in range(len(seed))] + flips
