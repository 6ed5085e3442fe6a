"""Remote models scored asynchronously: the serving function hands each batch for a model server to this operator.

Topology (both jobs)::

    ModelServingKeyed / ModelServingPartitioned ──side: remote requests──► AsyncDataStream (RemoteScoring)
        ─► split ─► results (joined with the serving function's), dead letters, stats

The serving function still chooses the model (the event-time rule, roles,
state), but a remote model's batch leaves as one ``RemoteBatch`` message
instead of blocking the function while the server answers. Flink's async
operator keeps the requests in flight in its checkpoints, so a request
pending at a checkpoint is asked again after a restore: nothing is lost, and
the transactional sink keeps results exactly once. A failure never fails the
job: it ends as dead letters with the reason (``remote timeout``, ``remote
unavailable``, ``remote circuit open``, ...).
"""

from __future__ import annotations

from pyflink.datastream import AsyncFunction, ProcessFunction, RuntimeContext

from flink_jobs.tags import DEAD_LETTERS, STATS
from serving.core.remote_batches import RemoteOutcome, remote_outcomes, timed_out
from serving.settings import ServingOptions


class RemoteScoring(AsyncFunction):
    """Scores ``RemoteBatch`` messages on their model servers; returns tagged outcomes (see ``remote_batches``)."""

    def __init__(self, options: ServingOptions) -> None:
        self.options = options
        self._scorer = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Make this instance's scorer (its model cache, clients and stats)."""
        from serving.core.remote_batches import RemoteScorer

        instance = f"remote-{runtime_context.get_index_of_this_subtask()}"
        self._scorer = RemoteScorer(instance, self.options)

    def close(self) -> None:
        """Close the models' connections."""
        if self._scorer is not None:
            self._scorer.close()

    async def async_invoke(self, value: bytes) -> list[bytes]:
        """Score one ``RemoteBatch``: tagged results, or dead letters with the reason; never raises."""
        return await self._scorer.score(bytes(value))

    def timeout(self, value: bytes) -> list[bytes]:
        """Flink's own limit passed (a server that never answers): every record becomes a dead letter."""
        return timed_out(bytes(value), self.options)


class SplitRemoteOutcomes(ProcessFunction):
    """Tagged outcomes of :class:`RemoteScoring` to results (main output), dead letters and stats."""

    def process_element(self, value: bytes, ctx: ProcessFunction.Context):
        """Route one tagged outcome by its tag."""
        kind, payload = remote_outcomes(bytes(value))
        if kind is RemoteOutcome.RESULT:
            yield payload
        elif kind is RemoteOutcome.DEAD_LETTER:
            yield DEAD_LETTERS, payload
        else:
            yield STATS, payload
