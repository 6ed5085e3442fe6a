"""Per-member counters of an ensemble: which member decided each record, and how each member answered.

An ensemble's scores (``serving.formats.ensemble.EnsembleScores``) carry per
record the deciding member (``decided_by``, ``name:version``) and, for the
whole batch, one outcome per member (status ``ok``, ``late`` or ``error``).
:func:`tally` turns them into one :class:`MemberServingStats` per member,
counted per record: a batch of N records in which a member was late counts N
late records for it. Scores of other models carry neither, and tally to nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from serving.deciders.base import ERROR, LATE, OK
from serving.pb.model_stats_pb2 import MemberStats


@dataclass
class MemberServingStats:
    """Records one ensemble member decided (``wins``), answered in time (``ok``), missed (``late``) or failed."""

    name: str
    version: str
    wins: int = 0
    ok: int = 0
    late: int = 0
    errors: int = 0

    @property
    def label(self) -> str:
        """``name:version``, as ``decided_by`` names a member."""
        return f"{self.name}:{self.version}"

    def to_proto(self) -> MemberStats:
        """The ``MemberStats`` protobuf of these counters."""
        return MemberStats(
            name=self.name, version=self.version, wins=self.wins, ok=self.ok, late=self.late, errors=self.errors
        )

    @classmethod
    def from_proto(cls, message: MemberStats) -> MemberServingStats:
        """Counters from a ``MemberStats`` protobuf."""
        return cls(message.name, message.version, message.wins, message.ok, message.late, message.errors)


def tally(scores: object, count: int) -> tuple[MemberServingStats, ...]:
    """The per-member counters of one scored batch of ``count`` records; empty unless ``scores`` are an ensemble's.

    Each member outcome counts once per record under its status; the member
    ``decided_by`` names for a record gets that record's win.
    """
    outcomes = getattr(scores, "outcomes", ()) or ()
    if not outcomes or count <= 0:
        return ()
    members: dict[str, MemberServingStats] = {}
    for outcome in outcomes:
        member = members.setdefault(
            f"{outcome.name}:{outcome.version}", MemberServingStats(outcome.name, outcome.version)
        )
        if outcome.status == OK:
            member.ok += count
        elif outcome.status == LATE:
            member.late += count
        elif outcome.status == ERROR:
            member.errors += count
    for label, wins in Counter(getattr(scores, "decided_by", ()) or ()).items():
        if label not in members:  # a decider names members by their outcomes; keep a stray name all the same
            name, _, version = label.rpartition(":")
            members[label] = MemberServingStats(name, version)
        members[label].wins += wins
    return tuple(members.values())


def add_members(into: Sequence[MemberServingStats], more: Iterable[MemberServingStats]) -> list[MemberServingStats]:
    """The sums per member (by name and version) of two lists, as new objects, in first-seen order."""
    summed: dict[tuple[str, str], MemberServingStats] = {}
    for member in (*into, *more):
        key = (member.name, member.version)
        total = summed.setdefault(key, MemberServingStats(member.name, member.version))
        total.wins += member.wins
        total.ok += member.ok
        total.late += member.late
        total.errors += member.errors
    return list(summed.values())
