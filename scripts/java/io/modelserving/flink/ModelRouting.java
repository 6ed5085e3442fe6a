package io.modelserving.flink;

import java.io.ByteArrayOutputStream;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Raw {@code ModelDescriptor} (or {@code DataTypeSchema}) bytes to {@code Row(data_type, created_at,
 * payload, kind)}, in the JVM.
 *
 * <p>Reads fields 3 ({@code data_type}) and 8 ({@code created_at}) of the wire format, so a model
 * reaches the serving function with its event time without a Python hop of its own (every hop
 * delays it, and a delayed model loses the race against the records it should score). A descriptor
 * without {@code created_at} is stamped with the wall clock now: the field is appended to the
 * bytes, which protobuf reads as that field's value. A {@code created_at} outside the {@link
 * EventTimeRange}, or bytes that are no message, travel with {@code Long.MIN_VALUE}; the serving
 * function's admission rejects them with the reason. A data type's schema message keeps its data
 * type and {@code created_at} at the same field numbers, so it is routed alike; {@code kind} tells
 * the serving function which of the two it is.
 */
public final class ModelRouting implements MapFunction<byte[], Row> {

    private static final long serialVersionUID = 2L;

    /** Field 8, wire type 0 (varint): {@code created_at}. */
    private static final byte CREATED_AT_TAG = (byte) (8 << 3);

    private final EventTimeRange range;
    private final String kind;

    /**
     * @param maxFutureSkewMs how far ahead of the wall clock created_at may be (0: up to year 9999)
     * @param kind "model" or "schema": what the stream carries
     */
    public ModelRouting(long maxFutureSkewMs, String kind) {
        this.range = new EventTimeRange(maxFutureSkewMs);
        this.kind = kind;
    }

    @Override
    public Row map(byte[] payload) {
        WireScan fields;
        try {
            fields = WireScan.of(payload, 8);
        } catch (IllegalArgumentException e) {
            return Row.of("", Long.MIN_VALUE, payload, kind);
        }
        long createdAt = fields.varint(8);
        if (createdAt == 0) {
            createdAt = System.currentTimeMillis();
            payload = stamped(payload, createdAt);
        }
        return Row.of(fields.string(3), range.orNone(createdAt), payload, kind);
    }

    private static byte[] stamped(byte[] payload, long createdAt) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(payload.length + 11);
        out.write(payload, 0, payload.length);
        out.write(CREATED_AT_TAG);
        byte[] varint = WireScan.encodeVarint(createdAt);
        out.write(varint, 0, varint.length);
        return out.toByteArray();
    }
}
