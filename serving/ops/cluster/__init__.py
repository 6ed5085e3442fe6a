"""Operating a standalone Flink cluster and its jobs, without importing pyflink.

* :mod:`.errors`: :class:`~.errors.ClusterError` and its kinds, each a one-line message.
* :mod:`.config`: where Flink, the job and its jars are; the rendered Flink configuration.
* :mod:`.local`: :class:`~.local.LocalCluster`, a JobManager and TaskManagers on this machine.
* :mod:`.rest`: :class:`~.rest.FlinkRest`, jobs and savepoints through Flink's REST API.
* :mod:`.submit`: :func:`~.submit.submit`, ``flink run -py flink_jobs/main.py`` against any cluster.
* :mod:`.upgrade`: :func:`~.upgrade.upgrade`, stop with a savepoint, resubmit from it, confirm running.
"""
