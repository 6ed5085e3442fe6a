"""The pieces of a lineup (:mod:`serving.rollout.lineup`): version entries, outcomes, a transition's draft."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from serving.rollout.control import CANARY, CHAMPION, DECOY

if TYPE_CHECKING:
    from serving.rollout.lineup import Lineup

#: How many evicted version names a lineup remembers.
MAX_EVICTED = 32

# Outcome kinds.
ACTIVATED, STAGED, ADDED, PROMOTED, ROLLED_BACK = "activated", "staged", "added", "promoted", "rolled back"
PINNED, UNPINNED, RETIRED, ROLE_SET, WEIGHT_SET = "pinned", "unpinned", "retired", "role set", "weight set"
EVICTED, REJECTED = "evicted", "rejected"


@dataclass(frozen=True)
class VersionEntry:
    """One accepted version: what was published, its role now, and when it took or lost one (epoch ms)."""

    version: str
    name: str = ""
    sha256: str = ""
    created_at: int = 0
    #: One of :data:`~serving.rollout.control.ROLES`, or "" (history, staged).
    role: str = ""
    #: When it took its current role (when it was accepted, if it has none).
    deployed_at: int = 0
    #: When it last lost a role; 0 while it holds one.
    retired_at: int = 0
    signed_by: str = ""

    @classmethod
    def of_model(cls, model) -> VersionEntry:
        """The entry of an admitted :class:`~serving.core.model.Model` (no role yet)."""
        return cls(
            version=model.version,
            name=model.name,
            sha256=model.artifact_sha256,
            created_at=model.descriptor.created_at,
            signed_by=model.signed_by,
        )


@dataclass(frozen=True)
class OutcomeItem:
    """One thing a transition did (``kind``: ``activated``, ``retired``, ``rejected`` ...) to ``version``."""

    kind: str
    version: str = ""
    #: Machine-readable, for ``rejected`` items: ``downgrade``, ``unknown version`` ...
    reason: str = ""
    #: One readable sentence.
    detail: str = ""


class CanarySlot(NamedTuple):
    """The canary version and its share of records in basis points."""

    version: str
    weight_bp: int


@dataclass(frozen=True)
class Outcome:
    """What a transition did: the new lineup and the items, in order."""

    lineup: Lineup
    items: tuple[OutcomeItem, ...] = field(default_factory=tuple)

    @property
    def rejected(self) -> bool:
        """Whether the transition was refused (the lineup is then the one it was applied to)."""
        return any(item.kind == REJECTED for item in self.items)

    @property
    def reason(self) -> str:
        """The rejection's reason, "" when not rejected."""
        return next((item.reason for item in self.items if item.kind == REJECTED), "")

    def kinds(self) -> list[tuple[str, str]]:
        """``(kind, version)`` of each item: a compact view for logs and tests."""
        return [(item.kind, item.version) for item in self.items]


class Draft:
    """A mutable copy of a lineup while one transition is worked out; :meth:`finish` evicts and freezes it."""

    def __init__(self, lineup: Lineup) -> None:
        self.lineup = lineup
        self.entries = {e.version: e for e in lineup.entries}  # insertion order = acceptance order
        self.weight = lineup.canary_weight_bp
        self.pinned = lineup.pinned
        self.staged = list(lineup.staged)
        self.champions = list(lineup.champions)
        self.evicted = list(lineup.evicted)
        self.items: list[OutcomeItem] = []

    def note(self, kind: str, version: str = "", detail: str = "") -> None:
        """Record what the transition did."""
        self.items.append(OutcomeItem(kind, version, detail=detail))

    def add(self, entry: VersionEntry, now: int) -> None:
        """Remember ``entry`` as the newest accepted version (a version accepted again moves to the end)."""
        if entry.version in self.entries:
            self.take_role(entry.version, now, quiet=True)
            del self.entries[entry.version]
        self.staged = [v for v in self.staged if v != entry.version]
        self.evicted = [v for v in self.evicted if v != entry.version]
        self.entries[entry.version] = entry

    def take_role(self, version: str, now: int, quiet: bool = False) -> None:
        """``version`` loses its role, if any (noted as ``retired`` unless ``quiet``); a canary's weight goes to 0."""
        entry = self.entries[version]
        if not entry.role:
            return
        if entry.role == CANARY:
            self.weight = 0
        self.entries[version] = replace(entry, role="", retired_at=now)
        if not quiet:
            self.note(RETIRED, version, f"{version} no longer {entry.role}")

    def give_role(self, version: str, role: str, now: int, weight_bp: int = 0) -> None:
        """``version`` takes ``role``; the holder of a single role (champion, canary, decoy) loses it."""
        if role in (CHAMPION, CANARY, DECOY):
            for other in [e.version for e in self.entries.values() if e.role == role and e.version != version]:
                self.take_role(other, now)
        self.take_role(version, now, quiet=True)
        self.staged = [v for v in self.staged if v != version]
        self.entries[version] = replace(self.entries[version], role=role, deployed_at=now, retired_at=0)
        if role == CANARY:
            self.weight = weight_bp

    def make_champion(self, version: str, now: int) -> None:
        """``version`` becomes the champion (the old one retires) and the newest in the champions' succession."""
        self.give_role(version, CHAMPION, now)
        self.champions = [v for v in self.champions if v != version] + [version]

    def finish(self) -> Outcome:
        """Evict what is beyond ``keep`` and freeze the draft into the outcome's lineup."""
        lineup = self.lineup
        keep = lineup.keep
        while len(self.entries) > keep:
            old = next((e for e in self.entries.values() if not e.role and e.version not in self.staged), None)
            if old is None:  # every remembered version is active or staged
                break
            del self.entries[old.version]
            self.champions = [v for v in self.champions if v != old.version]
            self.evicted = [*self.evicted, old.version][-MAX_EVICTED:]
            self.note(EVICTED, old.version, f"{old.version} forgotten (more than {keep} versions)")
        new = replace(
            lineup,
            entries=tuple(self.entries.values()),
            canary_weight_bp=self.weight,
            pinned=self.pinned,
            staged=tuple(self.staged),
            champions=tuple(self.champions),
            evicted=tuple(self.evicted),
        )
        return Outcome(new, tuple(self.items))
