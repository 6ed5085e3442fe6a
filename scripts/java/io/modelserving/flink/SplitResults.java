package io.modelserving.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.util.Collector;

/**
 * A serving function's {@code ResultBatch} (protos/record_batch.proto) to one element per result,
 * in the JVM, so each result becomes its own Kafka record without another hop to Python.
 *
 * <p>Only field 1 (length-delimited) is expected; anything else fails the job loudly, as a batch
 * that does not parse means the two sides disagree on the format.
 */
public final class SplitResults implements FlatMapFunction<byte[], byte[]> {

    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(byte[] batch, Collector<byte[]> out) {
        int[] at = {0};
        while (at[0] < batch.length) {
            long tag = WireScan.readVarint(batch, at);
            if (tag != ((1 << 3) | 2)) {
                throw new IllegalArgumentException("not a ResultBatch: field tag " + tag);
            }
            int length = (int) WireScan.readVarint(batch, at);
            if (length < 0 || at[0] + length > batch.length) {
                throw new IllegalArgumentException("not a ResultBatch: a result runs past the end");
            }
            byte[] result = new byte[length];
            System.arraycopy(batch, at[0], result, 0, length);
            at[0] += length;
            out.collect(result);
        }
    }
}
