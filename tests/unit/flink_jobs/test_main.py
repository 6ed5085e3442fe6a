"""The job entry point: its flags and the limits it checks before it starts."""

from __future__ import annotations

import pytest

from serving.errors import ConfigError
from serving.kafka.settings import KafkaSettings
from serving.settings import ServingOptions


def test_a_dead_letter_cap_over_the_topics_limit_is_refused():
    from flink_jobs.main import check_limits

    check_limits(ServingOptions(), KafkaSettings())
    with pytest.raises(ConfigError, match="max_message_bytes"):
        check_limits(ServingOptions(dead_letter_max_payload_bytes=4 * 1024 * 1024), KafkaSettings())


def test_a_bad_job_flag_is_one_line_without_its_value():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.main", "--parallelism", "0", "--bootstrap-servers", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "flink_jobs.main: error: invalid job setting parallelism: Input should be greater than or equal to 1"
    ]
