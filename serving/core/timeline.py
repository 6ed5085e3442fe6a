"""Event-time model timelines: which model scores which record. Flink-free.

Both jobs buffer records and models until the watermark passes them, then
call :func:`assign` with the records that are due and the models serving
their data type, ordered by publication time (``created_at``). The rule:

* a record is scored by the latest model with ``created_at <= record.ts``;
* a model and a record at the same instant: the model comes first;
* a record older than every model is *early*: in ``hold`` mode it is scored
  by the first model, in ``drop`` mode (or with no model at all) it is not.

Because the rule only looks at timestamps, the result does not depend on the
order in which the data and model streams happen to interleave.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from serving.core.model import Model
from serving.pb.wine_record_pb2 import WineRecord


@dataclass
class Assignment:
    """Records grouped by the model that scores them; ``unserved`` found no model."""

    runs: list[tuple[Model, list[WineRecord]]] = field(default_factory=list)
    unserved: list[WineRecord] = field(default_factory=list)


def assign(records: Sequence[WineRecord], timeline: Sequence[tuple[int, Model]], *, hold: bool) -> Assignment:
    """Group ``records`` by model; ``timeline`` is ``(created_at, model)`` sorted by time."""
    out = Assignment()
    if not timeline:
        out.unserved = list(records)
        return out
    starts = [t for t, _ in timeline]
    groups: dict[int, list[WineRecord]] = {}
    for record in sorted(records, key=lambda r: r.ts):
        index = bisect.bisect_right(starts, record.ts) - 1
        if index < 0:
            if not hold:
                out.unserved.append(record)
                continue
            index = 0
        groups.setdefault(index, []).append(record)
    out.runs = [(timeline[i][1], groups[i]) for i in sorted(groups)]
    return out
