package io.modelserving.flink;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * A record from Kafka ({@code Row(topic, partition, offset, timestamp, value)}) to {@code Row(key,
 * Row(data_type, id, ts, payload, topic, partition, offset, kafka_ts))}, in the JVM.
 *
 * <p>The JVM knows no schema, so it routes on what it can read without one:
 *
 * <ul>
 *   <li>the data type: the topic's name after {@code topicPrefix} ({@code data.iris} carries
 *       {@code iris}), else field 2 of a protobuf message ({@code WineRecord} and the generic
 *       {@code Record} both keep it there);
 *   <li>the event time: field 3 of such a protobuf message when set, else the Kafka timestamp;
 *   <li>the id: field 1 of such a message, else {@code topic/partition/offset}.
 * </ul>
 *
 * <p>The row always carries the topic: every result names where its record was read (provenance,
 * issue 17), and a record without an id of its own is known by {@code topic/partition/offset}.
 *
 * <p>A message is protobuf unless its first byte says Avro (0, the Confluent framing) or JSON
 * ({@code {}). The key is the data type ({@code buckets == 0}) or {@code crc32(id) % buckets}, as
 * Python's {@code zlib.crc32} computes it. Protobuf bytes that do not parse, on a topic that names
 * no data type, travel with an empty key and {@code ts = Long.MIN_VALUE}, which never moves a
 * watermark; so does a time outside the {@link EventTimeRange}. The serving function decodes every
 * record with its data type's schema and dead-letters what fails, with the reason.
 */
public final class RecordRouting implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 3L;

    private final int buckets;
    private final EventTimeRange range;
    private final String topicPrefix;

    /**
     * @param buckets 0 to key by data type, else the number of hash buckets of the record id
     * @param maxFutureSkewMs how far ahead of the wall clock a ts may be (0: up to year 9999)
     * @param topicPrefix topics named {@code prefix + data type} carry that data type ("" for none)
     */
    public RecordRouting(int buckets, long maxFutureSkewMs, String topicPrefix) {
        if (buckets < 0) {
            throw new IllegalArgumentException("buckets must be 0 or more");
        }
        this.buckets = buckets;
        this.range = new EventTimeRange(maxFutureSkewMs);
        this.topicPrefix = topicPrefix;
    }

    @Override
    public Row map(Row record) {
        String topic = (String) record.getField(0);
        int partition = (Integer) record.getField(1);
        long offset = (Long) record.getField(2);
        long kafkaTs = (Long) record.getField(3);
        byte[] payload = (byte[]) record.getField(4);
        String dataType = "";
        if (!topicPrefix.isEmpty() && topic.startsWith(topicPrefix) && topic.length() > topicPrefix.length()) {
            dataType = topic.substring(topicPrefix.length());
        }
        String id = "";
        long ts = kafkaTs;
        if (isProtobuf(payload)) {
            try {
                WireScan fields = WireScan.of(payload, 3);
                id = fields.string(1);
                if (dataType.isEmpty()) {
                    dataType = fields.string(2);
                }
                if (fields.varint(3) != 0) {
                    ts = fields.varint(3);
                }
            } catch (IllegalArgumentException e) {
                if (dataType.isEmpty()) {
                    return Row.of("", row("", "", Long.MIN_VALUE, payload, topic, partition, offset, kafkaTs));
                }
            }
        }
        if (id.isEmpty()) {
            id = topic.isEmpty() ? Long.toString(offset) : topic + "/" + partition + "/" + offset;
        }
        return Row.of(
                key(id, dataType), row(dataType, id, range.orNone(ts), payload, topic, partition, offset, kafkaTs));
    }

    private static Row row(
            String dataType,
            String id,
            long ts,
            byte[] payload,
            String topic,
            int partition,
            long offset,
            long kafkaTs) {
        return Row.of(dataType, id, ts, payload, topic, partition, offset, kafkaTs);
    }

    /** Neither Confluent-framed Avro (magic byte 0) nor a JSON object. */
    static boolean isProtobuf(byte[] payload) {
        if (payload.length >= 5 && payload[0] == 0) {
            return false;
        }
        for (byte b : payload) {
            if (b == ' ' || b == '\t' || b == '\r' || b == '\n') {
                continue;
            }
            return b != '{';
        }
        return true;
    }

    private String key(String id, String dataType) {
        if (buckets == 0) {
            return dataType;
        }
        CRC32 crc = new CRC32();
        crc.update(id.getBytes(StandardCharsets.UTF_8));
        return Long.toString(crc.getValue() % buckets);
    }
}
