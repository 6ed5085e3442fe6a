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
 * reason. As in protobuf, the last occurrence of a field wins.
 */
public final class RecordRouting implements MapFunction<byte[], Row> {

    private static final long serialVersionUID = 1L;

    private final int buckets;

    /** @param buckets 0 to key by data type, else the number of hash buckets of the record id */
    public RecordRouting(int buckets) {
        if (buckets < 0) {
            throw new IllegalArgumentException("buckets must be 0 or more");
        }
        this.buckets = buckets;
    }

    @Override
    public Row map(byte[] payload) {
        String id = "";
        String dataType = "";
        long ts = 0L;
        try {
            int pos = 0;
            while (pos < payload.length) {
                long tag = 0;
                int shift = 0;
                while (true) {
                    byte b = payload[pos++];
                    tag |= (long) (b & 0x7F) << shift;
                    if ((b & 0x80) == 0) {
                        break;
                    }
                    shift += 7;
                    if (shift > 63) {
                        throw new IllegalArgumentException("varint too long");
                    }
                }
                int field = (int) (tag >>> 3);
                int wireType = (int) (tag & 7);
                if (field == 0) {
                    throw new IllegalArgumentException("field number 0");
                }
                switch (wireType) {
                    case 0: {
                        long value = 0;
                        shift = 0;
                        while (true) {
                            byte b = payload[pos++];
                            value |= (long) (b & 0x7F) << shift;
                            if ((b & 0x80) == 0) {
                                break;
                            }
                            shift += 7;
                            if (shift > 63) {
                                throw new IllegalArgumentException("varint too long");
                            }
                        }
                        if (field == 3) {
                            ts = value;
                        }
                        break;
                    }
                    case 1:
                        pos += 8;
                        break;
                    case 2: {
                        long length = 0;
                        shift = 0;
                        while (true) {
                            byte b = payload[pos++];
                            length |= (long) (b & 0x7F) << shift;
                            if ((b & 0x80) == 0) {
                                break;
                            }
                            shift += 7;
                            if (shift > 63) {
                                throw new IllegalArgumentException("varint too long");
                            }
                        }
                        if (length < 0 || pos + length > payload.length) {
                            throw new IllegalArgumentException("truncated");
                        }
                        if (field == 1) {
                            id = new String(payload, pos, (int) length, StandardCharsets.UTF_8);
                        } else if (field == 2) {
                            dataType = new String(payload, pos, (int) length, StandardCharsets.UTF_8);
                        }
                        pos += (int) length;
                        break;
                    }
                    case 5:
                        pos += 4;
                        break;
                    default:
                        throw new IllegalArgumentException("wire type " + wireType);
                }
                if (pos > payload.length) {
                    throw new IllegalArgumentException("truncated");
                }
            }
        } catch (RuntimeException e) {
            // ArrayIndexOutOfBounds (truncated varint) included: Python decodes and dead-letters it.
            return Row.of("", Row.of("", "", Long.MIN_VALUE, payload));
        }
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
