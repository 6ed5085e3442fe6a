"""Late models: a model that reaches the job after records it should have scored. Flink-free.

The serving rule scores a record with the latest model whose ``created_at``
is at or before the record's ``ts``. The jobs hold records until the
watermark has passed them by ``max_model_delay_ms``, so a model that reaches
the job within that delay is never late. One that arrives later finds some
of its records already scored by a predecessor; those results are committed
and stay. :class:`ScoredTimes` makes that visible instead of silent: each
instance remembers, per data type, the event times of the records it scored
over the last ``late_model_horizon_ms`` and the models its last flush could
apply, and reports a newly seen model whose ``created_at`` is behind that
flush as a ``LATE_MODEL`` event with the exact number of records it missed
(a lower bound, flagged, when some lie beyond the horizon).

State is bytes (a ``ScoredTimes`` protobuf with NumPy arrays inside), one
``ValueState`` per key; its size is bounded by the horizon in milliseconds,
not by the record rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.core.model import Model
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_state_pb2 import DataTypeTimes
from serving.pb.serving_state_pb2 import ScoredTimes as ScoredTimesProto

_SEP = "\x1f"
_MIN = -(2**63)


def model_id(model: Model) -> str:
    """How a model is named in ``DataTypeTimes.models``: name, version and ``created_at``."""
    return _SEP.join((model.name, model.version, str(model.descriptor.created_at)))


@dataclass(frozen=True)
class LateModel:
    """A model that missed ``missed`` records with ts in ``[missed_from, missed_to]``."""

    model: Model
    missed: int
    missed_from: int
    missed_to: int
    exact: bool

    def event(self, instance: str, now: int, previous_version: str = "") -> ModelEvent:
        """The ``LATE_MODEL`` event reporting it."""
        model = self.model
        return ModelEvent(
            kind=ModelEvent.LATE_MODEL,
            name=model.name,
            version=model.version,
            data_type=model.data_type,
            model_type=model.model_type,
            reason=(
                f"arrived after {self.missed}{'' if self.exact else '+'} records with ts in "
                f"[{self.missed_from}, {self.missed_to}] were scored by its predecessor"
            ),
            previous_version=previous_version,
            ts=now,
            missed=self.missed,
            missed_from=self.missed_from,
            missed_to=self.missed_to,
            missed_exact=self.exact,
            instance=instance,
        )


class _Times:
    """One data type's entry, with its arrays decoded."""

    def __init__(self, entry: DataTypeTimes) -> None:
        self.entry = entry
        self.ts = np.frombuffer(entry.ts, dtype="<i8") if entry.ts else np.empty(0, dtype=np.int64)
        self.counts = np.frombuffer(entry.counts, dtype="<i8") if entry.counts else np.empty(0, dtype=np.int64)

    def count_between(self, low: int, high: int) -> int:
        """Records scored with ``low <= ts < high``."""
        lo, hi = np.searchsorted(self.ts, [low, high], side="left")
        return int(self.counts[lo:hi].sum())

    def add(self, times: np.ndarray) -> None:
        if not len(times):
            return
        merged = np.concatenate([self.ts, times])
        weights = np.concatenate([self.counts, np.ones(len(times), dtype=np.int64)])
        self.ts, inverse = np.unique(merged, return_inverse=True)
        self.counts = np.bincount(inverse, weights=weights, minlength=len(self.ts)).astype(np.int64)

    def prune(self, before: int) -> None:
        cut = int(np.searchsorted(self.ts, before, side="left"))
        if cut:
            self.entry.exact_from = max(self.entry.exact_from, int(self.ts[cut - 1]) + 1)
            self.ts, self.counts = self.ts[cut:], self.counts[cut:]

    def store(self) -> None:
        self.entry.ts = self.ts.astype("<i8").tobytes()
        self.entry.counts = self.counts.astype("<i8").tobytes()


class ScoredTimes:
    """What one instance scored recently, per data type; see the module docstring.

    Use per flush: :meth:`late_models` for each data type with the models the
    flush can apply (before scoring), then, for each data type it scored,
    :meth:`scored` with the event times of the records and :meth:`flushed`;
    keep :meth:`to_bytes` in state.
    """

    def __init__(self, horizon_ms: int, saved: bytes | None = None) -> None:
        self.horizon_ms = horizon_ms
        message = ScoredTimesProto.FromString(bytes(saved)) if saved else ScoredTimesProto()
        self._types: dict[str, _Times] = {e.data_type: _Times(e) for e in message.types}

    def _times(self, data_type: str) -> _Times:
        times = self._types.get(data_type)
        if times is None:
            times = self._types[data_type] = _Times(DataTypeTimes(data_type=data_type, exact_from=_MIN))
        return times

    def late_models(self, data_type: str, timeline: Sequence[tuple[int, Model]]) -> list[LateModel]:
        """Models of ``timeline`` (``(created_at, model)``, by time) not seen before, that came late.

        A model is late when its ``created_at`` is at or before the records
        bound of the last flush that scored ``data_type``: records from then
        on were scored without it. It missed those up to the next model of
        the timeline (which scored the later ones as the rule says). Every
        model of ``timeline`` counts as seen from now on.
        """
        times = self._times(data_type)
        known = set(times.entry.models)
        del times.entry.models[:]
        times.entry.models.extend(model_id(m) for _, m in timeline)
        if not times.entry.flushed:
            return []
        flushed_up_to = times.entry.flushed_up_to
        late = []
        for i, (created_at, model) in enumerate(timeline):
            if model_id(model) in known or created_at > flushed_up_to:
                continue
            following = [t for t, _ in timeline[i + 1 :] if t > created_at]
            upper = min([*following, flushed_up_to + 1])
            missed = times.count_between(created_at, upper)
            exact = created_at >= times.entry.exact_from
            if missed or not exact:
                late.append(LateModel(model, missed, created_at, upper - 1, exact))
        return late

    def scored(self, data_type: str, times: Sequence[int] | np.ndarray) -> None:
        """Remember the event times of records just scored for ``data_type``."""
        self._times(data_type).add(np.asarray(times, dtype=np.int64))

    def flushed(self, data_type: str, records_up_to: int) -> None:
        """A flush scored ``data_type``'s records up to ``records_up_to`` (after :meth:`late_models`)."""
        times = self._times(data_type)
        times.entry.flushed, times.entry.flushed_up_to = True, records_up_to
        times.prune(records_up_to - self.horizon_ms if records_up_to > _MIN + self.horizon_ms else _MIN)
        times.store()

    def to_bytes(self) -> bytes:
        """The state to keep (a ``ScoredTimes`` protobuf)."""
        for times in self._types.values():
            times.store()
        return ScoredTimesProto(types=[t.entry for t in self._types.values()]).SerializeToString()
