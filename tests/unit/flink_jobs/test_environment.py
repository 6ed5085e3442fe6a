"""The job environment's settings that live outside Flink's configuration."""

from __future__ import annotations

from serving.settings import JobSettings


def test_loopback_workers_leave_pyflinks_switch_unset_so_flink_run_works():
    from flink_jobs.environment import PYTHON_WORKERS_ENV, select_python_workers

    environ = {PYTHON_WORKERS_ENV: "process"}
    select_python_workers("loopback", environ)
    assert PYTHON_WORKERS_ENV not in environ  # "loopback" set explicitly fails every job under `flink run`
    select_python_workers("process", environ)
    assert environ[PYTHON_WORKERS_ENV] == "process"


def test_a_local_minicluster_serves_rest_on_loopback_only():
    from flink_jobs.environment import job_configuration

    local = job_configuration(JobSettings())
    assert local.get_string("rest.bind-address", "") == "127.0.0.1"
    chosen = job_configuration(JobSettings(rest_bind_address="0.0.0.0", rest_port=18099))
    assert chosen.get_string("rest.bind-address", "") == "0.0.0.0"
    assert chosen.get_string("rest.port", "") == "18099"
    # Under `flink run` the client's own REST address must stay as the CLI set it.
    remote = job_configuration(JobSettings(), local=False)
    assert remote.get_string("rest.bind-address", "unset") == "unset"
    assert remote.get_string("rest.port", "unset") == "unset"
