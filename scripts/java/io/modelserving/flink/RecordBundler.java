package io.modelserving.flink;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Routed records ({@code Row(key, RECORD_ROW)}) to bundles ({@code Row(key, RecordBatch bytes)}):
 * one element per key for up to {@code maxRecords} records or {@code maxWaitMs} of processing
 * time, so the hop to a Python worker is paid once per bundle, not once per record.
 *
 * <p>Contract:
 *
 * <ul>
 *   <li>Order within a key is kept; a bundle holds one key's records only.
 *   <li>No record is ever behind a watermark this operator forwards: before a watermark goes on,
 *       every bundle holding a record at or before it is emitted.
 *   <li>Nothing is open at a checkpoint: every bundle is emitted before the barrier ({@link
 *       #prepareSnapshotPreBarrier}), so the operator has no state and exactly-once is untouched.
 *   <li>A record whose time is at or behind the watermark when it arrives is marked {@code late}
 *       (field 9 of {@code BatchedRecord}); the serving function applies the job's rule for it.
 * </ul>
 *
 * <p>The bundle is the protobuf wire format of {@code RecordBatch} (protos/record_batch.proto),
 * written here by hand: one length-delimited field 1 per record, so bundles concatenate.
 */
public final class RecordBundler extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {

    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long maxWaitMs;

    private transient Map<String, Bundle> open;
    private transient long watermark;
    private transient boolean timerSet;

    /**
     * @param maxRecords the most records in one bundle (1: every record crosses alone)
     * @param maxWaitMs the longest a record waits in an open bundle, in processing time
     */
    public RecordBundler(int maxRecords, long maxWaitMs) {
        if (maxRecords < 1 || maxWaitMs < 1) {
            throw new IllegalArgumentException("a bundle holds 1 record or more, for 1 ms or more");
        }
        this.maxRecords = maxRecords;
        this.maxWaitMs = maxWaitMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        open = new LinkedHashMap<>();
        watermark = Long.MIN_VALUE;
        timerSet = false;
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        Row keyed = element.getValue();
        String key = (String) keyed.getField(0);
        Row record = (Row) keyed.getField(1);
        long ts = (Long) record.getField(2);
        // Long.MIN_VALUE marks a record the routing could not time; the serving function refuses it.
        boolean late = ts != Long.MIN_VALUE && ts <= watermark;
        Bundle bundle = open.computeIfAbsent(key, k -> new Bundle());
        bundle.add(record, late);
        if (bundle.count >= maxRecords) {
            emit(key, open.remove(key));
        } else if (!timerSet) {
            timerSet = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + maxWaitMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerSet = false;
        emitAll();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        long at = mark.getTimestamp();
        List<String> due = new ArrayList<>();
        for (Map.Entry<String, Bundle> e : open.entrySet()) {
            if (e.getValue().minTs <= at) {
                due.add(e.getKey());
            }
        }
        for (String key : due) {
            emit(key, open.remove(key));
        }
        watermark = Math.max(watermark, at);
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        emitAll();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void finish() throws Exception {
        emitAll();
        super.finish();
    }

    private void emitAll() {
        for (Map.Entry<String, Bundle> e : open.entrySet()) {
            emit(e.getKey(), e.getValue());
        }
        open.clear();
    }

    private void emit(String key, Bundle bundle) {
        Row out = Row.of(key, bundle.bytes.toByteArray());
        if (bundle.minTs == Long.MAX_VALUE) {
            output.collect(new StreamRecord<>(out));
        } else {
            output.collect(new StreamRecord<>(out, bundle.minTs));
        }
    }

    /** One key's open bundle: {@code RecordBatch} bytes so far. */
    private static final class Bundle {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream(4096);
        final ByteArrayOutputStream scratch = new ByteArrayOutputStream(256);
        int count;
        long minTs = Long.MAX_VALUE;

        void add(Row record, boolean late) {
            long ts = (Long) record.getField(2);
            if (ts != Long.MIN_VALUE) {
                minTs = Math.min(minTs, ts);
            }
            scratch.reset();
            Wire.string(scratch, 1, (String) record.getField(0));
            Wire.string(scratch, 2, (String) record.getField(1));
            Wire.varintField(scratch, 3, ts);
            Wire.bytes(scratch, 4, (byte[]) record.getField(3));
            Wire.string(scratch, 5, (String) record.getField(4));
            Wire.varintField(scratch, 6, (Integer) record.getField(5));
            Wire.varintField(scratch, 7, (Long) record.getField(6));
            Wire.varintField(scratch, 8, (Long) record.getField(7));
            if (late) {
                Wire.varintField(scratch, 9, 1);
            }
            Wire.tag(bytes, 1, 2);
            Wire.varint(bytes, scratch.size());
            bytes.write(scratch.toByteArray(), 0, scratch.size());
            count++;
        }
    }

    /** The few protobuf wire-format writes a bundle needs (proto3: zero values are left out). */
    static final class Wire {
        private Wire() {}

        static void tag(ByteArrayOutputStream out, int field, int wireType) {
            varint(out, ((long) field << 3) | wireType);
        }

        static void varint(ByteArrayOutputStream out, long value) {
            while ((value & ~0x7FL) != 0) {
                out.write((int) ((value & 0x7F) | 0x80));
                value >>>= 7;
            }
            out.write((int) value);
        }

        static void varintField(ByteArrayOutputStream out, int field, long value) {
            if (value != 0) {
                tag(out, field, 0);
                varint(out, value);
            }
        }

        static void bytes(ByteArrayOutputStream out, int field, byte[] value) {
            if (value.length > 0) {
                tag(out, field, 2);
                varint(out, value.length);
                out.write(value, 0, value.length);
            }
        }

        static void string(ByteArrayOutputStream out, int field, String value) {
            if (!value.isEmpty()) {
                bytes(out, field, value.getBytes(StandardCharsets.UTF_8));
            }
        }
    }
}
