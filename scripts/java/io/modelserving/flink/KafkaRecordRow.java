package io.modelserving.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
// The SQL connector jar shades the Kafka client classes.
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * A Kafka record as {@code Row(topic, partition, offset, timestamp, value)}, value bytes as they are.
 *
 * <p>The routing needs the coordinates (a record's id when its schema names none, and the topic
 * that names its data type) and the Kafka timestamp (its event time when the message carries
 * none). A null value (a tombstone) becomes an empty array, which the serving function
 * dead-letters, so every message ends as a result or a dead letter.
 */
public final class KafkaRecordRow implements KafkaRecordDeserializationSchema<Row> {

    private static final long serialVersionUID = 1L;

    private static final byte[] EMPTY = new byte[0];

    /** The produced type, as Python declares it ({@code flink_jobs.tags.KAFKA_RECORD}). */
    public static final TypeInformation<Row> TYPE =
            Types.ROW_NAMED(
                    new String[] {"topic", "partition", "offset", "timestamp", "value"},
                    Types.STRING,
                    Types.INT,
                    Types.LONG,
                    Types.LONG,
                    Types.PRIMITIVE_ARRAY(Types.BYTE));

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] value = record.value() == null ? EMPTY : record.value();
        out.collect(Row.of(record.topic(), record.partition(), record.offset(), record.timestamp(), value));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return TYPE;
    }
}
