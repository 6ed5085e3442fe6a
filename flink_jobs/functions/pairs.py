"""Comparisons counted per pair of versions, keyed by data type: stats, and the promotion recommendation.

Topology::

    serving function ─side: comparisons─► key_by(data type) ─► ComparePairs ─► stats
                                                                  side: model events (PROMOTE_RECOMMENDED),
                                                                        control (PROMOTE, with auto_promote)

Keyed by data type, so every comparison of a pair meets in one place, from
either job shape (the partitioned job's instances each see only some records).

State per data type (bytes, never pickled objects):

* ``pairs``: ``champion version``, a unit separator, ``challenger version`` -> ``PairAggregateState`` bytes;
* ``recommended``: the pairs whose promotion was recommended already (once each).
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from flink_jobs.tags import BYTES, CONTROL, END_OF_INPUT, MODEL_EVENTS
from serving.clock import now_ms
from serving.logs import get_logger
from serving.pb.comparison_pb2 import Comparison
from serving.rollout.experiments import count, final_stats, key_of
from serving.rollout.promotion import PromotionRule
from serving.settings import ServingOptions

log = get_logger("pairs")

PAIRS = MapStateDescriptor("pairs", Types.STRING(), BYTES)
RECOMMENDED = MapStateDescriptor("recommended", Types.STRING(), Types.BOOLEAN())


class ComparisonKey:
    """The data type of a ``Comparison`` (its bytes), the key of :class:`ComparePairs`."""

    def __call__(self, value) -> str:
        """The comparison's data type."""
        return Comparison.FromString(bytes(value)).data_type


class ComparePairs(KeyedProcessFunction):
    """Counts each comparison into its pair's aggregate; see :mod:`serving.rollout.experiments` for the contract.

    At the end of a bounded input every pair's stats are emitted once more, so
    a finished run's last figures are on the stats output.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        """Bind the state and build the promotion rule."""
        self.pairs = runtime_context.get_map_state(PAIRS)
        self.recommended = runtime_context.get_map_state(RECOMMENDED)
        self.rule = PromotionRule(self.options.promotion_min_n, self.options.promotion_threshold)
        self.instance = f"compare-{runtime_context.get_index_of_this_subtask()}"

    def process_element(self, value, ctx):
        """One comparison: counted; stats every ``stats_every_records``; a recommendation once, when the rule holds."""
        comparison = Comparison.FromString(bytes(value))
        key = key_of(comparison)
        state = self.pairs.get(key)
        if state is None:  # a new pair: one timer per data type is enough, and it survives restores
            ctx.timer_service().register_event_time_timer(END_OF_INPUT - 1)
        counted = count(
            state,
            bool(self.recommended.get(key)),
            comparison,
            self.rule,
            every=self.options.stats_every_records,
            now=now_ms(),
            auto_promote=self.options.auto_promote,
            instance=self.instance,
        )
        self.pairs.put(key, counted.state)
        if counted.stats is not None:
            yield counted.stats.SerializeToString()
        if counted.event is not None:
            self.recommended.put(key, True)
            log.info(
                "promotion recommended",
                extra={
                    "data_type": comparison.data_type,
                    "version": counted.event.version,
                    "reason": counted.event.reason,
                },
            )
            yield MODEL_EVENTS, counted.event.SerializeToString()
        if counted.control is not None:
            yield CONTROL, counted.control.SerializeToString()

    def on_timer(self, timestamp: int, ctx):
        """The end of a bounded input: every pair's stats as they stand."""
        now = now_ms()
        for _, state in self.pairs.items():
            yield final_stats(bytes(state), now, self.rule, self.instance).SerializeToString()
