package io.modelserving.flink;

import java.io.Serializable;

/**
 * The event times a job accepts: 0 to {@code maxFutureSkewMs} ahead of the wall clock (never past
 * year 9999), as {@code serving.records.base.check_timestamp} states it in Python. A time outside it must
 * not reach a watermark or a timer: routing replaces it by {@code Long.MIN_VALUE}, which never
 * moves a watermark, and the Python function dead-letters the message with the reason.
 */
final class EventTimeRange implements Serializable {

    private static final long serialVersionUID = 1L;

    /** 9999-12-31T23:59:59.999Z, as {@code serving.settings.MAX_TIMESTAMP_MS}. */
    static final long MAX_TIMESTAMP_MS = 253_402_300_799_999L;

    private final long maxFutureSkewMs;

    /** @param maxFutureSkewMs 0 for no bound but year 9999 */
    EventTimeRange(long maxFutureSkewMs) {
        if (maxFutureSkewMs < 0) {
            throw new IllegalArgumentException("maxFutureSkewMs must be 0 or more");
        }
        this.maxFutureSkewMs = maxFutureSkewMs;
    }

    boolean contains(long ts) {
        long upper = MAX_TIMESTAMP_MS;
        if (maxFutureSkewMs > 0) {
            upper = Math.min(upper, System.currentTimeMillis() + maxFutureSkewMs);
        }
        return ts >= 0 && ts <= upper;
    }

    /** {@code ts} when it is in range, else {@code Long.MIN_VALUE}. */
    long orNone(long ts) {
        return contains(ts) ? ts : Long.MIN_VALUE;
    }
}
