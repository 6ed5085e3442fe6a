"""The job environment's settings that live outside Flink's configuration."""

from __future__ import annotations


def test_loopback_workers_leave_pyflinks_switch_unset_so_flink_run_works():
    from flink_jobs.environment import PYTHON_WORKERS_ENV, select_python_workers

    environ = {PYTHON_WORKERS_ENV: "process"}
    select_python_workers("loopback", environ)
    assert PYTHON_WORKERS_ENV not in environ  # "loopback" set explicitly fails every job under `flink run`
    select_python_workers("process", environ)
    assert environ[PYTHON_WORKERS_ENV] == "process"
