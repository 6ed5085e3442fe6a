package io.modelserving.flink;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.util.Collector;

/**
 * A Kafka value as bytes, where a null value (a tombstone) becomes an empty array.
 *
 * <p>Flink's byte-array schema drops null values without a trace; here they reach the serving
 * function, which dead-letters them as {@code empty record}, so every input message ends as a
 * result or a dead letter.
 */
public final class NullAsEmptyBytes implements DeserializationSchema<byte[]> {

    private static final long serialVersionUID = 1L;

    private static final byte[] EMPTY = new byte[0];

    @Override
    public byte[] deserialize(byte[] message) {
        return message == null ? EMPTY : message;
    }

    @Override
    public void deserialize(byte[] message, Collector<byte[]> out) {
        out.collect(deserialize(message));
    }

    @Override
    public boolean isEndOfStream(byte[] nextElement) {
        return false;
    }

    @Override
    public TypeInformation<byte[]> getProducedType() {
        return PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
    }
}
