"""Which records a canary serves: a stable hash of the record id, the same in every process and on every run.

A record's bucket in an experiment is the 8-byte BLAKE2b digest
(``digest_size=8``, not a prefix of the 64-byte one) of
``"<experiment>:<record id>"``, big-endian, modulo 10000; the
canary serves the records whose bucket is below its weight in basis points.
Never Python's ``hash()``: it is salted per process (``PYTHONHASHSEED``), so
two Flink workers, or a restart, would split the records differently.

Because the bucket does not depend on the weight, raising the weight only
adds records to the canary (every record of weight w is a record of any
weight above w) and lowering it only removes some: a record never flips
back and forth while a canary ramps up. The experiment name salts the
split, so two canaries (or two versions of one data type) pick unrelated
records: :func:`experiment_name`.
"""

from __future__ import annotations

import hashlib

#: Buckets per experiment: one per basis point.
BUCKETS = 10_000


def bucket(experiment: str, record_id: str) -> int:
    """The record's bucket in ``experiment``, 0..9999; a pure function of the two strings."""
    digest = hashlib.blake2b(f"{experiment}:{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(experiment: str, record_id: str, weight_bp: int) -> bool:
    """Whether the canary of ``experiment`` at ``weight_bp`` basis points serves the record.

    Weight 0 serves none, 10000 (or more) every record; a record selected at
    some weight is selected at every higher one.
    """
    return bucket(experiment, record_id) < weight_bp


def experiment_name(data_type: str, version: str) -> str:
    """The experiment of the canary ``version`` of ``data_type``: ``"<data type>/<version>"``."""
    return f"{data_type}/{version}"
