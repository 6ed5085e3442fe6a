"""What goes wrong operating a Flink cluster: every failure a user can cause, as a one-line message."""

from __future__ import annotations

from serving.errors import ServingError


class ClusterError(ServingError):
    """A Flink cluster or job could not be started, reached or controlled."""

    reason = "cluster error"


class ClusterUnreachable(ClusterError):
    """No Flink REST endpoint answered at the address."""

    reason = "cluster unreachable"


class JobNotFound(ClusterError):
    """The cluster does not know the job id."""

    reason = "job not found"


class SubmitError(ClusterError):
    """``flink run`` failed, or the submitted job did not come up."""

    reason = "submit failed"


class SavepointError(ClusterError):
    """A savepoint (or stop with savepoint) failed."""

    reason = "savepoint failed"
