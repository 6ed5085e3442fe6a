package io.modelserving.flink;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.types.Row;

/**
 * Writes a {@code Row(key BYTES, value BYTES)} to a fixed topic as one Kafka record with that key
 * and value.
 *
 * <p>PyFlink's {@code KafkaRecordSerializationSchema.builder()} cannot take the key from one field
 * and the value from another, so a compacted topic (the stats topic, keyed by data type, model and
 * instance) needs this. A null or empty key field writes a record without a key; the partition is
 * left to the producer's partitioner, which hashes the key, so records with one key stay in order.
 */
public final class KeyedBytesSerializationSchema implements KafkaRecordSerializationSchema<Row> {

    private static final long serialVersionUID = 1L;

    private final String topic;

    /** @param topic the topic every record goes to */
    public KeyedBytesSerializationSchema(String topic) {
        if (topic == null || topic.isEmpty()) {
            throw new IllegalArgumentException("topic must not be empty");
        }
        this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Row element, KafkaSinkContext context, Long timestamp) {
        byte[] key = (byte[]) element.getField(0);
        byte[] value = (byte[]) element.getField(1);
        return new ProducerRecord<>(topic, null, timestamp, key == null || key.length == 0 ? null : key, value);
    }

    /** @return the topic every record goes to */
    public String getTopic() {
        return topic;
    }
}
