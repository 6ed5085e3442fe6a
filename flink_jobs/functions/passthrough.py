"""The passthrough function: the benchmark's ceiling, a result per record without a model."""

from __future__ import annotations

from pyflink.datastream.functions import ProcessFunction, RuntimeContext

from flink_jobs.functions.base import startup_registry, validated
from flink_jobs.functions.batches import records_of, results_batched
from flink_jobs.functions.metrics import ServingMetrics
from serving.pb.serving_result_pb2 import ServingResult
from serving.settings import PASSTHROUGH_MODEL, ServingOptions


class Passthrough(ProcessFunction):
    """A decoded record -> one ``ServingResult`` named ``passthrough``: no model, no state, no score.

    The benchmark's ceiling: what the sources, routing, decoding, the Python
    hand-over and the sinks cost without any serving work. Invalid records are
    dead-lettered as in the serving jobs. Declares the stats side output
    (never written) so the job has the same four outputs as the serving jobs.
    """

    def __init__(self, options: ServingOptions) -> None:
        self.options = options

    def open(self, runtime_context: RuntimeContext) -> None:
        """Register the metrics (dead letters are counted as in the serving jobs) and know the schemas."""
        self.metrics = ServingMetrics(runtime_context.get_metrics_group())
        self.registry = startup_registry(self.options)

    def process_element(self, value, ctx):
        """One ``ResultBatch`` for a bundle (``Row(key, RecordBatch bytes)``), and a dead letter per bad record."""
        return results_batched(self._results(value[1]))

    def _results(self, batch: bytes):
        for routed in records_of(batch):
            record = yield from validated(routed, self.registry, self.metrics, self.options)
            if record is not None:
                result = ServingResult(
                    model_name=PASSTHROUGH_MODEL, data_type=record.data_type, record_id=record.id, record_ts=record.ts
                )
                yield result.SerializeToString()
