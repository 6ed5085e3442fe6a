package io.modelserving.flink;

import java.nio.charset.StandardCharsets;

/**
 * Reads a few top-level fields of a protobuf message from its wire format, without a schema.
 *
 * <p>Only length-delimited fields (read as UTF-8 strings) and varint fields are kept, by field
 * number; every other field is skipped. As in protobuf, the last occurrence of a field wins. A
 * message that is not well-formed (truncated, a bad wire type, field number 0, an over-long varint)
 * throws {@link IllegalArgumentException}.
 */
final class WireScan {

    private final String[] strings;
    private final long[] varints;
    private final boolean[] present;

    private WireScan(int maxField) {
        strings = new String[maxField + 1];
        varints = new long[maxField + 1];
        present = new boolean[maxField + 1];
    }

    /** Scans {@code payload}, keeping fields numbered 1 to {@code maxField}. */
    static WireScan of(byte[] payload, int maxField) {
        WireScan scan = new WireScan(maxField);
        int[] pos = {0};
        try {
            while (pos[0] < payload.length) {
                long tag = readVarint(payload, pos);
                long field = tag >>> 3;
                int wireType = (int) (tag & 7);
                if (field == 0) {
                    throw new IllegalArgumentException("field number 0");
                }
                boolean keep = field <= maxField;
                switch (wireType) {
                    case 0: {
                        long value = readVarint(payload, pos);
                        if (keep) {
                            scan.varints[(int) field] = value;
                            scan.present[(int) field] = true;
                        }
                        break;
                    }
                    case 1:
                        skip(payload, pos, 8);
                        break;
                    case 2: {
                        long length = readVarint(payload, pos);
                        if (length < 0 || length > payload.length - pos[0]) {
                            throw new IllegalArgumentException("truncated");
                        }
                        if (keep) {
                            scan.strings[(int) field] =
                                    new String(payload, pos[0], (int) length, StandardCharsets.UTF_8);
                            scan.present[(int) field] = true;
                        }
                        pos[0] += (int) length;
                        break;
                    }
                    case 5:
                        skip(payload, pos, 4);
                        break;
                    default:
                        throw new IllegalArgumentException("wire type " + wireType);
                }
            }
        } catch (ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("truncated varint", e);
        }
        return scan;
    }

    /** The string in field {@code number}, or "" when absent. */
    String string(int number) {
        return strings[number] == null ? "" : strings[number];
    }

    /** The varint in field {@code number}, or 0 when absent. */
    long varint(int number) {
        return varints[number];
    }

    boolean has(int number) {
        return present[number];
    }

    private static void skip(byte[] payload, int[] pos, int bytes) {
        if (payload.length - pos[0] < bytes) {
            throw new IllegalArgumentException("truncated");
        }
        pos[0] += bytes;
    }

    static long readVarint(byte[] payload, int[] pos) {
        long value = 0;
        int shift = 0;
        while (true) {
            byte b = payload[pos[0]++];
            value |= (long) (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                return value;
            }
            shift += 7;
            if (shift > 63) {
                throw new IllegalArgumentException("varint too long");
            }
        }
    }

    /** A varint as protobuf writes it. */
    static byte[] encodeVarint(long value) {
        byte[] buffer = new byte[10];
        int n = 0;
        while ((value & ~0x7FL) != 0) {
            buffer[n++] = (byte) ((value & 0x7F) | 0x80);
            value >>>= 7;
        }
        buffer[n++] = (byte) value;
        byte[] out = new byte[n];
        System.arraycopy(buffer, 0, out, 0, n);
        return out;
    }
}
