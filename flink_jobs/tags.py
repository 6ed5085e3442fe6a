"""Type information and side-output tags shared by both jobs.

Everything that crosses between operators is bytes (serialized protobufs) or
a small Row of primitives, never a pickled Python object, so state and
savepoints stay readable and stable across code changes.
"""

from pyflink.common import Types
from pyflink.datastream import OutputTag

BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())

#: A Kafka record as the data source reads it (``io.modelserving.flink.KafkaRecordRow``); other
#: sources give the same shape, with topic "" and the offset as the row number.
KAFKA_RECORD = Types.ROW_NAMED(
    ["topic", "partition", "offset", "timestamp", "value"],
    [Types.STRING(), Types.INT(), Types.LONG(), Types.LONG(), BYTES],
)

#: A routed data record (``RecordRouting``): what the JVM read of it, its bytes, and where it came from.
RECORD_ROW = Types.ROW_NAMED(
    ["data_type", "id", "ts", "payload", "topic", "partition", "offset", "kafka_ts"],
    [Types.STRING(), Types.STRING(), Types.LONG(), BYTES, Types.STRING(), Types.INT(), Types.LONG(), Types.LONG()],
)

#: A decoded record with its key (data type or hash bucket) in front, as a keyed stream carries it.
KEYED_RECORD_ROW = Types.ROW([Types.STRING(), RECORD_ROW])

#: A bundle of one key's routed records (``RecordBundler``): the key, and ``RecordBatch`` bytes.
BUNDLE_ROW = Types.ROW([Types.STRING(), BYTES])

#: A routed model or schema message (``ModelRouting``): key fields, the bytes, and ``kind`` ("model" or "schema").
MODEL_ROW = Types.ROW_NAMED(
    ["data_type", "created_at", "payload", "kind"], [Types.STRING(), Types.LONG(), BYTES, Types.STRING()]
)

#: ModelStats bytes: on every model change, every N records or T seconds, and at end of input.
STATS = OutputTag("stats", BYTES)
#: DeadLetter bytes: undecodable records and models, records with no model, scoring errors.
DEAD_LETTERS = OutputTag("dead-letters", BYTES)
#: ModelEvent bytes: accepted, rejected (with the reason) or duplicate.
MODEL_EVENTS = OutputTag("model-events", BYTES)
#: Comparison bytes: champion versus a shadow or the canary, per record scored by both.
COMPARISONS = OutputTag("comparisons", BYTES)
#: ArchivedRecord bytes: a decoy's copy of each input.
ARCHIVE = OutputTag("archive", BYTES)
#: ModelControl bytes the job publishes itself (``auto_promote``), to the control topic.
CONTROL = OutputTag("control", BYTES)
#: RemoteBatch bytes: a remote model's records, for the async scoring operator (flink_jobs.functions.remote).
REMOTE_REQUESTS = OutputTag("remote-requests", BYTES)

#: Long.MAX_VALUE: the watermark a bounded source sends when it is done.
END_OF_INPUT = 2**63 - 1
