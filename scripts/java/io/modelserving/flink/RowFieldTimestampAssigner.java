package io.modelserving.flink;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.types.Row;

/**
 * Event time from a {@code long} field of a {@code Row}, reached by a path of field positions
 * (for example {@code [1, 2]}: field 2 of the row in field 1).
 *
 * <p>A Python {@code TimestampAssigner} runs in a Python operator of its own, which costs a Python
 * worker and two more crossings between the JVM and Python per record; this does the same in the
 * JVM. A null field gives {@code Long.MIN_VALUE}, which never advances the watermark.
 */
public final class RowFieldTimestampAssigner implements SerializableTimestampAssigner<Row> {

    private static final long serialVersionUID = 1L;

    private final int[] path;

    /** @param path field positions from the outer row to the {@code long} timestamp */
    public RowFieldTimestampAssigner(int[] path) {
        if (path == null || path.length == 0) {
            throw new IllegalArgumentException("path must name at least one field");
        }
        this.path = path.clone();
    }

    @Override
    public long extractTimestamp(Row element, long recordTimestamp) {
        Object value = element;
        for (int position : path) {
            if (!(value instanceof Row)) {
                return Long.MIN_VALUE;
            }
            value = ((Row) value).getField(position);
        }
        return value instanceof Number ? ((Number) value).longValue() : Long.MIN_VALUE;
    }
}
