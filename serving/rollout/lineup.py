"""The lineup of one data type: which accepted version holds which role, and the versions it remembers.

Roles: at most one **champion** (it serves; none before the first model),
any number of **shadows** (scored and compared, never served), at most one
**canary** (serves ``canary_weight_bp`` basis points of the records, see
:mod:`serving.rollout.canary`) and at most one **decoy**. A version without a
role is history: a former champion, a retired one, or one **staged** while
the lineup is **pinned**.

A lineup is an immutable value. Each transition (:meth:`Lineup.accepted` for
a newly admitted model, :meth:`Lineup.apply` for a ``ModelControl``) returns
an :class:`Outcome`: the new lineup and what happened, item by item; a
rejected transition returns the lineup unchanged with one ``rejected`` item
and its reason. The rules:

* **accepted as champion**: it becomes champion (``activated``), the old one
  stays in history (``retired``); while pinned it is ``staged`` instead. A
  **downgrade** is rejected: a ``created_at`` before the champion's, or a
  version the lineup remembers as older than the champion (or has evicted).
  Only ROLLBACK goes back. The champion's own version again: ``already champion``.
* **accepted as shadow, canary or decoy**: ``added`` in that role; a new
  canary or decoy replaces the old one (``retired``).
* **PROMOTE v**: a shadow, canary or staged version becomes champion
  (``promoted``), pinned or not (the pin holds off accepted models, not an
  operator); other versions are ``not a candidate`` (history goes back by ROLLBACK).
* **ROLLBACK [v]**: v (any remembered version) or, without one, the champion
  before the current one becomes champion (``rolled back``); works while
  pinned. The champions rolled back over are no longer "previous".
* **PIN** / **UNPIN**: UNPIN activates the newest staged version (greatest
  ``created_at``, the later staged on a tie) and forgets the staging of the rest.
* **SET_ROLE v role** (champion: as PROMOTE), **SET_WEIGHT v w** (the canary
  only), **RETIRE v** (any role but champion's: ``would leave no champion``;
  or a staged version).
* An action on a version never seen is rejected ``unknown version``; on one
  remembered once and evicted since, ``evicted version``.

Memory: versions with a role and staged ones are always kept; of the rest,
the oldest accepted are evicted (``evicted``) while more than ``keep``
versions are remembered. The last :data:`MAX_EVICTED` evicted names are kept
to tell ``evicted version`` from ``unknown version``.

In Flink state a lineup is bytes (:meth:`Lineup.to_bytes`, a ``LineupState``
protobuf), never a pickle; see :mod:`serving.rollout.lineup_codec`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from serving.errors import ConfigError, ServingError
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import CANARY, CHAMPION, DECOY, MAX_WEIGHT_BP, ROLES, SHADOW, check_control
from serving.rollout.lineup_parts import (
    ACTIVATED,
    ADDED,
    EVICTED,
    MAX_EVICTED,
    PINNED,
    PROMOTED,
    REJECTED,
    RETIRED,
    ROLE_SET,
    ROLLED_BACK,
    STAGED,
    UNPINNED,
    WEIGHT_SET,
    CanarySlot,
    Draft,
    Outcome,
    OutcomeItem,
    VersionEntry,
)

__all__ = [
    "ACTIVATED",
    "ADDED",
    "DEFAULT_KEEP",
    "EVICTED",
    "MAX_EVICTED",
    "PINNED",
    "PROMOTED",
    "REJECTED",
    "RETIRED",
    "ROLE_SET",
    "ROLLED_BACK",
    "STAGED",
    "UNPINNED",
    "WEIGHT_SET",
    "CanarySlot",
    "Lineup",
    "LineupStateError",
    "Outcome",
    "OutcomeItem",
    "VersionEntry",
]

#: How many versions a lineup remembers by default.
DEFAULT_KEEP = 3


class LineupStateError(ServingError):
    """Bytes that are not a lineup this code wrote (undecodable, another format, or inconsistent)."""

    reason = "bad lineup state"


@dataclass(frozen=True)
class Lineup:
    """The roles and remembered versions of one data type; immutable (see the module docstring)."""

    data_type: str
    #: Every remembered version, in the order accepted (oldest first).
    entries: tuple[VersionEntry, ...] = ()
    canary_weight_bp: int = 0
    pinned: bool = False
    #: Versions accepted as champion while pinned, in the order staged.
    staged: tuple[str, ...] = ()
    #: Champions in the order they took over, the current one last (what ROLLBACK goes back through).
    champions: tuple[str, ...] = ()
    keep: int = DEFAULT_KEEP
    #: Versions forgotten for room, newest last (at most :data:`MAX_EVICTED`).
    evicted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ConfigError(f"a lineup must remember at least 1 version, not {self.keep}")

    # ------------------------------------------------------------------ queries

    @property
    def champion(self) -> VersionEntry | None:
        """The serving version, or None before the first one."""
        return self._holder(CHAMPION)

    @property
    def shadows(self) -> tuple[VersionEntry, ...]:
        """The shadow versions, in the order accepted."""
        return tuple(e for e in self.entries if e.role == SHADOW)

    @property
    def canary(self) -> CanarySlot | None:
        """The canary version and its weight, or None."""
        holder = self._holder(CANARY)
        return None if holder is None else CanarySlot(holder.version, self.canary_weight_bp)

    @property
    def decoy(self) -> VersionEntry | None:
        """The decoy version, or None."""
        return self._holder(DECOY)

    @property
    def history(self) -> tuple[VersionEntry, ...]:
        """Every remembered version, active or not, in the order accepted."""
        return self.entries

    def active_versions(self) -> tuple[str, ...]:
        """The versions holding a role, in the order accepted."""
        return tuple(e.version for e in self.entries if e.role)

    def entry(self, version: str) -> VersionEntry | None:
        """The remembered entry of ``version``, or None."""
        return next((e for e in self.entries if e.version == version), None)

    def _holder(self, role: str) -> VersionEntry | None:
        return next((e for e in self.entries if e.role == role), None)

    # ------------------------------------------------------------------ transitions

    def accepted(self, entry: VersionEntry, role: str = CHAMPION, weight_bp: int = 0, now: int = 0) -> Outcome:
        """A newly admitted version in ``role`` (canary: at ``weight_bp``), at ``now`` (epoch ms); see the rules."""
        version = entry.version
        if not version:
            return self._rejected("", "no version", "an accepted model must have a version")
        if role not in ROLES:
            return self._rejected(version, "unknown role", f"role {role!r} is not one of {', '.join(ROLES)}")
        if not 0 <= weight_bp <= MAX_WEIGHT_BP:
            return self._rejected(version, "bad weight", f"weight {weight_bp} bp is outside 0..{MAX_WEIGHT_BP}")
        champion = self.champion
        if champion is not None and champion.version == version:
            return self._rejected(version, "already champion", f"{version} is the champion already")
        fresh = replace(entry, role="", deployed_at=now, retired_at=0)
        if role != CHAMPION:
            draft = Draft(self)
            draft.add(fresh, now)
            draft.note(ADDED, version, f"{version} added as {role}")
            draft.give_role(version, role, now, weight_bp)
            return draft.finish()
        downgrade = self._downgrade(fresh)
        if downgrade:
            return self._rejected(version, "downgrade", downgrade)
        draft = Draft(self)
        draft.add(fresh, now)
        if self.pinned:
            draft.staged.append(version)
            draft.note(STAGED, version, f"{version} staged: the champion is pinned")
        else:
            draft.note(ACTIVATED, version, f"{version} is the champion")
            draft.make_champion(version, now)
        return draft.finish()

    def remembered(self, entry: VersionEntry, now: int = 0) -> Outcome:
        """Remember ``entry`` as history, with no role and no event (a version already known: unchanged).

        For event-time selection: a model older than the champion that arrives
        after it serves only the records of its own time range (the timeline
        decides), so it neither takes over nor counts as a downgrade.
        """
        if not entry.version or entry.version in {e.version for e in self.entries}:
            return Outcome(self, ())
        draft = Draft(self)
        draft.add(replace(entry, role="", deployed_at=now, retired_at=0), now)
        return draft.finish()

    def apply(self, control: ModelControl, now: int = 0) -> Outcome:
        """Apply a ``ModelControl`` at ``now`` (epoch ms); see the rules. Never raises for any message."""
        try:
            check_control(control)
        except ServingError as exc:
            return self._rejected(control.target_version, exc.reason, str(exc))
        if control.data_type != self.data_type:
            detail = f"control for {control.data_type!r} applied to the lineup of {self.data_type!r}"
            return self._rejected(control.target_version, "wrong data type", detail)
        action, version = control.action, control.target_version
        if action == ModelControl.PIN:
            if self.pinned:
                return self._rejected("", "already pinned", "the champion is pinned already")
            return Outcome(replace(self, pinned=True), (OutcomeItem(PINNED, detail="champion pinned"),))
        if action == ModelControl.UNPIN:
            return self._unpin(now)
        if action == ModelControl.ROLLBACK and not version:
            previous = self._previous_champion()
            if previous is None:
                return self._rejected("", "no previous champion", "no earlier champion is remembered")
            version = previous
        if version not in {e.version for e in self.entries}:
            if version in self.evicted:
                return self._rejected(version, "evicted version", f"{version} was evicted: publish it again")
            return self._rejected(version, "unknown version", f"{version} is no version of {self.data_type!r}")
        entry = self.entry(version)
        assert entry is not None  # checked just above
        if action == ModelControl.ROLLBACK:
            return self._rollback(entry, now)
        if action == ModelControl.PROMOTE or (action == ModelControl.SET_ROLE and control.role == CHAMPION):
            return self._promote(entry, now)
        if action == ModelControl.SET_ROLE:
            return self._set_role(entry, control.role, control.weight_bp, now)
        if action == ModelControl.SET_WEIGHT:
            if entry.role != CANARY:
                return self._rejected(version, "not canary", f"{version} is no canary: only a canary has a weight")
            items = (OutcomeItem(WEIGHT_SET, version, detail=f"{version} serves {control.weight_bp} bp"),)
            return Outcome(replace(self, canary_weight_bp=control.weight_bp), items)
        return self._retire(entry, now)  # RETIRE: check_control admits no other action

    def _promote(self, entry: VersionEntry, now: int) -> Outcome:
        version = entry.version
        if entry.role == CHAMPION:
            return self._rejected(version, "already champion", f"{version} is the champion already")
        if entry.role not in (SHADOW, CANARY) and version not in self.staged:
            detail = f"{version} is no shadow, canary or staged version (roll back to a former one)"
            return self._rejected(version, "not a candidate", detail)
        draft = Draft(self)
        draft.note(PROMOTED, version, f"{version} promoted to champion")
        draft.make_champion(version, now)
        return draft.finish()

    def _rollback(self, entry: VersionEntry, now: int) -> Outcome:
        version = entry.version
        if entry.role == CHAMPION:
            return self._rejected(version, "already champion", f"{version} is the champion already")
        draft = Draft(self)
        if version in draft.champions:  # the champions after it are rolled back over
            del draft.champions[draft.champions.index(version) :]
        elif draft.champions:
            draft.champions.pop()
        draft.note(ROLLED_BACK, version, f"rolled back to {version}")
        draft.make_champion(version, now)
        return draft.finish()

    def _unpin(self, now: int) -> Outcome:
        if not self.pinned:
            return self._rejected("", "not pinned", "the champion is not pinned")
        draft = Draft(self)
        draft.pinned = False
        draft.note(UNPINNED, detail="champion unpinned")
        if draft.staged:
            order = {v: i for i, v in enumerate(draft.staged)}
            newest = max(draft.staged, key=lambda v: (draft.entries[v].created_at, order[v]))
            draft.note(ACTIVATED, newest, f"{newest} is the champion (staged while pinned)")
            draft.make_champion(newest, now)
            draft.staged.clear()
        return draft.finish()

    def _set_role(self, entry: VersionEntry, role: str, weight_bp: int, now: int) -> Outcome:
        version = entry.version
        if entry.role == CHAMPION:
            return self._rejected(version, "would leave no champion", f"{version} is the champion")
        if entry.role == role:
            return self._rejected(version, "no change", f"{version} is {role} already")
        draft = Draft(self)
        draft.note(ROLE_SET, version, f"{version} is {role}")
        draft.give_role(version, role, now, weight_bp)
        return draft.finish()

    def _retire(self, entry: VersionEntry, now: int) -> Outcome:
        version = entry.version
        if entry.role == CHAMPION:
            return self._rejected(version, "would leave no champion", f"{version} is the champion")
        if not entry.role and version not in self.staged:
            return self._rejected(version, "not active", f"{version} holds no role and is not staged")
        draft = Draft(self)
        if version in draft.staged:
            draft.staged.remove(version)
        draft.note(RETIRED, version, f"{version} retired")
        draft.take_role(version, now, quiet=True)
        return draft.finish()

    def _downgrade(self, fresh: VersionEntry) -> str:
        """Why accepting ``fresh`` as champion would go back in time ("" when it would not)."""
        version = fresh.version
        if version in self.evicted:
            return f"{version} is an old version (evicted): only a rollback goes back"
        champion = self.champion
        if champion is None:
            return ""
        if fresh.created_at < champion.created_at:
            return f"{version} was created before the champion {champion.version}: only a rollback goes back"
        known = self.entry(version)
        if known is not None and known.created_at < champion.created_at:
            return f"{version} is remembered as older than the champion {champion.version}"
        return ""

    def _previous_champion(self) -> str | None:
        current = self.champion
        earlier = [v for v in self.champions if current is None or v != current.version]
        return earlier[-1] if earlier else None

    def _rejected(self, version: str, reason: str, detail: str) -> Outcome:
        return Outcome(self, (OutcomeItem(REJECTED, version, reason, detail),))

    # ------------------------------------------------------------------ bytes

    def to_bytes(self) -> bytes:
        """The lineup as ``LineupState`` protobuf bytes (what Flink state holds)."""
        from serving.rollout.lineup_codec import encode

        return encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Lineup:
        """The lineup :meth:`to_bytes` wrote.

        Raises:
            LineupStateError: the bytes do not decode, or break a lineup's rules.
        """
        from serving.rollout.lineup_codec import decode

        return decode(data)
