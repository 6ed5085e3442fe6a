"""The Flink metrics of the serving functions (counters and a distribution under ``<operator>.modelserving``)."""

from __future__ import annotations

import contextlib

#: The metric group of every metric the Python functions register (under the operator's group).
METRIC_GROUP = "modelserving"


class ServingMetrics:
    """The Flink metrics of a serving function, under ``<operator>.modelserving``.

    * ``records_scored`` (counter): records that became a result;
    * ``dead_letters`` (counter): records and models sent to the dead letters;
    * ``model_swaps`` (counter): models that started serving (the first one too);
    * ``scoring_time_ns`` (distribution): scoring time per record in nanoseconds,
      one sample per scored batch (the batch's time divided by its size).

    They show in Flink's web UI and in every configured metrics reporter.
    ``metric_group`` is the function's ``runtime_context.get_metrics_group()``
    (or anything with the same ``add_group``/``counter``/``distribution`` methods).
    """

    def __init__(self, metric_group) -> None:
        group = metric_group.add_group(METRIC_GROUP)
        self.records_scored = group.counter("records_scored")
        self.dead_letters = group.counter("dead_letters")
        self.model_swaps = group.counter("model_swaps")
        self.scoring_time_ns = group.distribution("scoring_time_ns")
        self._scope = None

    def capture_scope(self) -> None:
        """Remember the operator's metrics scope; call it from ``process_element`` (and its kin).

        PyFlink (process mode) runs ``on_timer`` outside the operator's Beam
        metrics scope, so updates made there would be dropped; and the serving
        functions score records in ``on_timer``. The scope current while an
        element is processed is the operator's own, and :meth:`scope` enters
        it again for updates made from a timer.
        """
        if self._scope is not None:
            return
        state = _current_beam_state()
        if state is not None and getattr(state, "metrics_container", None) is not None:
            self._scope = state

    def scope(self):
        """A context in which metric updates count for this operator (see :meth:`capture_scope`)."""
        if self._scope is None or _current_beam_state() is self._scope:
            return contextlib.nullcontext()
        return self._scope

    def batch(self, count: int, duration_ns: int) -> None:
        """Account for ``count`` records scored together in ``duration_ns``."""
        if count > 0:
            with self.scope():
                self.records_scored.inc(count)
                self.scoring_time_ns.update(duration_ns // count)

    def dead_lettered(self, count: int = 1) -> None:
        """Account for ``count`` dead letters."""
        if count > 0:
            with self.scope():
                self.dead_letters.inc(count)

    def swapped(self, count: int) -> None:
        """Account for ``count`` models that started serving."""
        if count > 0:
            with self.scope():
                self.model_swaps.inc(count)


def _current_beam_state():
    """The state of Beam's state sampler in this thread (PyFlink process mode), else None."""
    try:
        from apache_beam.runners.worker.statesampler import get_current_tracker
    except ImportError:
        return None
    tracker = get_current_tracker()
    return tracker.current_state() if tracker is not None else None
