"""A lineup as ``LineupState`` protobuf bytes, and back: what Flink state holds instead of a pickle.

:func:`decode` checks what it reads against a lineup's rules, so state that
decodes is a lineup the transitions could have made: format 1, ``keep`` of
at least 1, unique non-empty versions, known roles, at most one champion,
canary and decoy, a weight in 0..10000 (0 without a canary), staged versions
remembered and without a role, the champions' succession remembered and
ending with the champion (empty without one), and at most ``MAX_EVICTED``
evicted names, none of them remembered.
"""

from __future__ import annotations

import dataclasses

from google.protobuf.message import DecodeError

from serving.pb.lineup_state_pb2 import LineupEntry, LineupState
from serving.rollout.control import CANARY, CHAMPION, DECOY, MAX_WEIGHT_BP, ROLES
from serving.rollout.lineup import MAX_EVICTED, Lineup, LineupStateError, VersionEntry

#: The only ``LineupState.format`` this code writes and reads.
FORMAT = 1


def encode(lineup: Lineup) -> bytes:
    """``lineup`` as ``LineupState`` bytes."""
    state = LineupState(
        format=FORMAT,
        data_type=lineup.data_type,
        canary_weight_bp=lineup.canary_weight_bp,
        pinned=lineup.pinned,
        staged=lineup.staged,
        champions=lineup.champions,
        keep=lineup.keep,
        evicted=lineup.evicted,
    )
    for e in lineup.entries:
        state.entries.append(LineupEntry(**_entry_fields(e)))
    return state.SerializeToString()


def decode(data: bytes) -> Lineup:
    """The lineup :func:`encode` wrote.

    Raises:
        LineupStateError: the bytes do not decode as a ``LineupState``, or it breaks a rule of the module docstring.
    """
    state = LineupState()
    try:
        state.ParseFromString(data)
    # DecodeError (upb), UnicodeDecodeError (pure Python, bad UTF-8), RecursionError (nested groups),
    # TypeError (not bytes at all).
    except (DecodeError, UnicodeDecodeError, RecursionError, TypeError, ValueError) as exc:
        raise LineupStateError(f"lineup state is not a LineupState: {str(exc)[:200]}") from exc
    if state.format != FORMAT:
        raise LineupStateError(f"lineup state has format {state.format}, not {FORMAT}")
    entries = tuple(VersionEntry(**_entry_fields(e)) for e in state.entries)
    _check(state, entries)
    return Lineup(
        data_type=state.data_type,
        entries=entries,
        canary_weight_bp=state.canary_weight_bp,
        pinned=state.pinned,
        staged=tuple(state.staged),
        champions=tuple(state.champions),
        keep=state.keep,
        evicted=tuple(state.evicted),
    )


def _check(state: LineupState, entries: tuple[VersionEntry, ...]) -> None:
    where = f"lineup state of {state.data_type[:80]!r}"
    if state.keep < 1:
        raise LineupStateError(f"{where} remembers {state.keep} versions, fewer than 1")
    versions = [e.version for e in entries]
    if not all(versions) or len(set(versions)) != len(versions):
        raise LineupStateError(f"{where} has an empty or repeated version")
    roles = [e.role for e in entries if e.role]
    unknown = sorted({r for r in roles if r not in ROLES})
    if unknown:
        raise LineupStateError(f"{where} has unknown roles {', '.join(repr(r[:40]) for r in unknown)}")
    for single in (CHAMPION, CANARY, DECOY):
        if roles.count(single) > 1:
            raise LineupStateError(f"{where} has {roles.count(single)} versions in the {single} role")
    if not 0 <= state.canary_weight_bp <= MAX_WEIGHT_BP or (state.canary_weight_bp and CANARY not in roles):
        raise LineupStateError(f"{where} has canary weight {state.canary_weight_bp} bp (canary: {CANARY in roles})")
    by_version = {e.version: e for e in entries}
    staged = list(state.staged)
    if len(set(staged)) != len(staged) or any(v not in by_version or by_version[v].role for v in staged):
        raise LineupStateError(f"{where} stages a repeated, unknown or active version")
    champions = list(state.champions)
    champion = next((e.version for e in entries if e.role == CHAMPION), None)
    if len(set(champions)) != len(champions) or any(v not in by_version for v in champions):
        raise LineupStateError(f"{where} has a repeated or unknown version among its champions")
    if (champions[-1] if champions else None) != champion:
        raise LineupStateError(f"{where}: its last champion is not its champion {champion!r}")
    evicted = list(state.evicted)
    if len(evicted) > MAX_EVICTED or any(v in by_version for v in evicted):
        raise LineupStateError(f"{where} has {len(evicted)} evicted versions, or one it still remembers")


#: A version entry's fields, named the same in ``VersionEntry`` and the ``LineupEntry`` protobuf.
_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(VersionEntry))


def _entry_fields(entry) -> dict:
    return {name: getattr(entry, name) for name in _ENTRY_FIELDS}
