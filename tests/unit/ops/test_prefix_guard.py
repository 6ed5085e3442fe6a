"""The pre-flight guard: a second job with a live job's transactional-id prefix is refused, in one line."""

from __future__ import annotations

import pytest

from serving.errors import ConfigError
from serving.ops.cluster.submit import PREFIX_VARIABLE, Submission, _record, refuse_shared_prefix

LIVE = "a" * 32
DONE = "b" * 32


class FakeRest:
    def __init__(self, jobs):
        self._jobs = jobs

    def jobs(self):
        return self._jobs


def submission(prefix: str) -> Submission:
    return Submission(job="keyed", kafka_env={PREFIX_VARIABLE: prefix})


def test_a_live_job_with_the_same_prefix_is_named_and_the_submission_refused(tmp_path):
    _record(tmp_path, LIVE, submission("shop"), "127.0.0.1:8081")
    rest = FakeRest([{"jid": LIVE, "state": "RUNNING"}])
    with pytest.raises(ConfigError) as refused:
        refuse_shared_prefix(submission("shop"), rest, tmp_path)
    message = str(refused.value)
    assert LIVE in message and "'shop'" in message and "\n" not in message


def test_another_prefix_or_a_finished_job_is_no_clash(tmp_path):
    _record(tmp_path, LIVE, submission("shop"), "127.0.0.1:8081")
    _record(tmp_path, DONE, submission("fraud"), "127.0.0.1:8081")
    rest = FakeRest([{"jid": LIVE, "state": "RUNNING"}, {"jid": DONE, "state": "CANCELED"}])
    refuse_shared_prefix(submission("fraud"), rest, tmp_path)  # the fraud job is over
    refuse_shared_prefix(submission("other"), rest, tmp_path)


def test_the_default_prefix_clashes_with_the_default_prefix(tmp_path):
    _record(tmp_path, LIVE, Submission(job="keyed"), "127.0.0.1:8081")
    with pytest.raises(ConfigError):
        refuse_shared_prefix(Submission(job="partitioned"), FakeRest([{"jid": LIVE, "state": "RESTARTING"}]), tmp_path)
