"""The checkpointed buffer of records that wait for the watermark."""

from __future__ import annotations

from collections.abc import Sequence

from serving.core.entries import encode_group, entry_ts, group_bounds, group_entries, is_group


class RecordBuffer:
    """The records of one key waiting for the watermark: a ``ListState`` of entries and a scored count.

    An element is one entry or a group of them (a batch that crossed from
    the JVM together); "entry" below means either.

    Entries (:mod:`serving.core.entries`) stay in arrival order; the
    ``ValueState`` counts the leading entries already scored. Records arrive
    roughly in ``ts`` order, so the due ones are mostly a prefix and a flush
    only moves the count: the records that wait are not rewritten, which
    would cost each record one rewrite per flush while it waits. The list is
    rewritten only when due records sit behind waiting ones (out-of-order
    arrivals, held records) and, to drop the scored prefix, once that prefix
    is over half the list (amortized once per record). Both states change in
    the same timer call, so every checkpoint sees them consistent.
    """

    #: Scored entries kept before a compaction is worth its rewrite.
    COMPACT_AFTER = 1024

    def __init__(self, entries_state, scored_state) -> None:
        self.entries_state, self.scored_state = entries_state, scored_state
        self._taken: tuple[list[bytes], int, int, int, list[bytes], bool] | None = None
        #: Whether entries of the key just flushed still wait (set by :meth:`take_due`, and by :meth:`settle`
        #: with the held ones), and when the oldest held one expires.
        self.waiting = False
        self.expire_at: int | None = None

    def add(self, entry: bytes) -> None:
        """Append an entry (:func:`serving.core.entries.encode_entry`)."""
        self.entries_state.add(entry)

    def take_due(self, up_to: int) -> list[bytes]:
        """The unscored entries with ``ts <= up_to``, in arrival order; :meth:`settle` must follow.

        A group (:func:`serving.core.entries.encode_group`) is due whole when
        its latest record is, waits whole when its earliest is not, and is
        split otherwise: its waiting part stays behind as a smaller group.
        """
        entries = list(self.entries_state.get() or [])
        scored = self.scored_state.value() or 0
        if scored > len(entries):  # never written together otherwise; be safe
            scored = 0
        due: list[bytes] = []
        later: list[bytes] = []
        prefix = whole = 0
        split = False
        for entry in entries[scored:]:
            if is_group(entry):
                low, high = group_bounds(entry)
                if high <= up_to:
                    due.extend(group_entries(entry))
                elif low > up_to:
                    later.append(entry)
                    continue
                else:
                    members = group_entries(entry)
                    due.extend(m for m in members if entry_ts(m) <= up_to)
                    later.append(encode_group([m for m in members if entry_ts(m) > up_to]))
                    split = True
                    continue
            elif entry_ts(entry) <= up_to:
                due.append(entry)
            else:
                later.append(entry)
                continue
            whole += 1
            prefix += not later
        self._taken = (entries, scored, prefix, whole, later, split)
        # One buffer serves every key of an instance, and a caller with nothing due returns without
        # settling: the flag must not be the previous key's, or a key that waits gets no idle timer.
        self.waiting = bool(later)
        return due

    def settle(self, held: Sequence[bytes] = ()) -> None:
        """Record that the entries :meth:`take_due` gave are done, except ``held`` (kept as entries)."""
        if self._taken is None:
            return
        entries, scored, prefix, whole, later, split = self._taken
        self._taken = None
        self.waiting = bool(held or later)
        if not held and not split and prefix == whole:
            done = scored + prefix
            if done == len(entries):
                self.entries_state.clear()
                self.scored_state.clear()
            elif done >= self.COMPACT_AFTER and 2 * done > len(entries):
                self.entries_state.update(entries[done:])
                self.scored_state.clear()
            elif done != scored:
                self.scored_state.update(done)
            return
        kept = [*held, *later]
        if kept:
            self.entries_state.update(kept)
        else:
            self.entries_state.clear()
        self.scored_state.clear()
