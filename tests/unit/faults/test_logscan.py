"""C7's log scan: the connector's data-loss and fencing lines are flagged, allow-listed ones are not."""

from __future__ import annotations

import pytest

from serving.faults.logscan import LogScanError, scan_logs

#: The committer's warning, as the Kafka connector (flink-connector-kafka 5.0) logs it.
DATA_LOSS = (
    "2026-12-01 21:40:01,123 WARN  org.apache.flink.connector.kafka.sink.internal.KafkaCommitter [] - "
    "Unable to commit transaction (FlinkKafkaInternalProducer@1) because its producer is already fenced. "
    "In both cases this most likely signals data loss, please consult the Flink documentation for more details."
)
HARMLESS = [
    "2026-12-01 21:40:00,001 INFO  org.apache.flink.runtime.taskmanager.Task [] - data (1/2) switched to RUNNING",
    "2026-12-01 21:40:00,002 INFO  ExactlyOnceKafkaWriter [] - Aborting lingering transactions from previous runs",
    "2026-12-01 21:40:00,003 INFO  metrics [] - numCommittablesFailure=0",
]


def write(tmp_path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_clean_logs_have_no_findings(tmp_path):
    assert scan_logs([write(tmp_path, "tm.log", HARMLESS)]) == []


def test_the_data_loss_warning_is_flagged_with_file_and_line(tmp_path):
    path = write(tmp_path, "tm.log", [*HARMLESS, DATA_LOSS])
    (finding,) = scan_logs([path])
    assert (finding.path, finding.line) == (str(path), 4)
    assert str(finding).startswith(f"{path}:4: 2026-12-01 21:40:01,123 WARN")


@pytest.mark.parametrize(
    "line",
    [
        "Caused by: org.apache.kafka.common.errors.ProducerFencedException: There is a newer producer",
        "WARN Producer was FENCED by the broker",
        "INFO metrics [] - numCommittablesFailure=3",
        'INFO {"numCommittablesFailure": 1}',
    ],
)
def test_fencing_and_failed_committables_are_flagged(tmp_path, line):
    assert len(scan_logs([write(tmp_path, "jm.log", [line])])) == 1


def test_an_allow_listed_line_is_not_flagged(tmp_path):
    fenced_abort = "INFO ExactlyOnceKafkaWriter [] - Producer faults-abc-0-1 fenced while aborting"
    path = write(tmp_path, "tm.log", [fenced_abort, DATA_LOSS])
    (finding,) = scan_logs([path])
    assert finding.line == 2
    assert scan_logs([path], extra_allow=[r"most likely signals data loss"]) == []


def test_long_lines_are_truncated(tmp_path):
    (finding,) = scan_logs([write(tmp_path, "tm.log", [DATA_LOSS + " x" * 500])], max_text=100)
    assert len(finding.text) == 100
    assert finding.text.endswith("...")


def test_findings_keep_file_then_line_order(tmp_path):
    first = write(tmp_path, "a.log", ["ProducerFencedException", "ok", DATA_LOSS])
    second = write(tmp_path, "b.log", [DATA_LOSS])
    assert [(f.path, f.line) for f in scan_logs([first, second])] == [
        (str(first), 1),
        (str(first), 3),
        (str(second), 1),
    ]


def test_a_missing_log_is_an_error_unless_allowed(tmp_path):
    with pytest.raises(LogScanError):
        scan_logs([tmp_path / "nope.log"])
    assert scan_logs([tmp_path / "nope.log"], missing_ok=True) == []
