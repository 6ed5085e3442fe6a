package io.modelserving.flink;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Raw {@code WineRecord} bytes to {@code Row(key, Row(data_type, id, ts, payload))}, in the JVM.
 *
 * <p>Reads only fields 1 ({@code id}), 2 ({@code data_type}) and 3 ({@code ts}) of the protobuf
 * wire format, so the stream can be timestamped and keyed before it reaches Python, where the
 * serving function decodes and validates the whole record once. A record is keyed by its data type
 * ({@code buckets == 0}) or by {@code crc32(id) % buckets}, as Python's {@code zlib.crc32} computes
 * it. Bytes that are not a parsable record are passed on unchanged with an empty key and {@code ts =
 * Long.MIN_VALUE} (which never moves a watermark): the serving function dead-letters them with the
 * reason. A {@code ts} outside the {@link EventTimeRange} keeps its key but also travels as {@code
 * Long.MIN_VALUE}, so a record from year 3000 cannot move the watermark for good. As in protobuf,
 * the last occurrence of a field wins.
 */
public final class RecordRouting implements MapFunction<byte[], Row> {

    private static final long serialVersionUID = 2L;

    private final int buckets;
    private final EventTimeRange range;

    /**
     * @param buckets 0 to key by data type, else the number of hash buckets of the record id
     * @param maxFutureSkewMs how far ahead of the wall clock a ts may be (0: up to year 9999)
     */
    public RecordRouting(int buckets, long maxFutureSkewMs) {
        if (buckets < 0) {
            throw new IllegalArgumentException("buckets must be 0 or more");
        }
        this.buckets = buckets;
        this.range = new EventTimeRange(maxFutureSkewMs);
    }

    @Override
    public Row map(byte[] payload) {
        WireScan fields;
        try {
            fields = WireScan.of(payload, 3);
        } catch (IllegalArgumentException e) {
            return Row.of("", Row.of("", "", Long.MIN_VALUE, payload));
        }
        String id = fields.string(1);
        String dataType = fields.string(2);
        long ts = range.orNone(fields.varint(3));
        return Row.of(key(id, dataType), Row.of(dataType, id, ts, payload));
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
