"""Cluster operations without a cluster: the rendered config, the flink command, REST handling, CLI errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from serving.cli import main
from serving.errors import ConfigError
from serving.kafka.settings import KafkaSettings, Topics
from serving.ops.broker import free_port
from serving.ops.cluster import config, submit
from serving.ops.cluster.config import ClusterOptions
from serving.ops.cluster.errors import ClusterUnreachable, JobNotFound, SavepointError
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import Submission
from serving.paths import PROJECT_ROOT

JOB = "0123456789abcdef0123456789abcdef"


def test_configure_renders_the_project_config_with_slots_memory_dirs_python_and_the_connector(tmp_path):
    options = ClusterOptions(
        rest_port=18081,
        rpc_port=16123,
        slots=3,
        taskmanager_memory="3g",
        savepoint_dir=tmp_path / "sp",
        flink={"heartbeat.timeout": "5s"},
    )
    conf_dir = LocalCluster(tmp_path / "state").configure(options)

    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    connector, _ = config.job_jars()
    assert conf["taskmanager.numberOfTaskSlots"] == 3
    assert conf["taskmanager.memory.process.size"] == "3g"
    assert conf["jobmanager.memory.process.size"] == "1024m"
    assert conf["rest.port"] == 18081 and conf["jobmanager.rpc.port"] == 16123
    assert conf["execution.checkpointing.savepoint-dir"] == (tmp_path / "sp").as_uri()
    assert conf["execution.checkpointing.dir"] == (tmp_path / "sp" / "checkpoints").as_uri()
    assert conf["python.executable"] == sys.executable and conf["python.execution-mode"] == "process"
    assert conf["pipeline.jars"] == connector.resolve().as_uri()
    assert conf["env.log.dir"] == str(tmp_path / "state" / "log")
    assert conf["env.pid.dir"] == str(tmp_path / "state" / "pid")
    assert conf["heartbeat.timeout"] == "5s"
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in conf["env.java.opts.all"]
    assert not any("${" in str(v) for v in conf.values())
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties"):
        assert (conf_dir / name).is_file()
    assert (conf_dir / "masters").read_text() == "localhost:18081\n"
    assert (conf_dir / "workers").read_text() == "localhost\n"


def test_default_savepoints_and_state_live_in_the_checkout():
    options = ClusterOptions()
    assert options.savepoint_dir == PROJECT_ROOT / "savepoints"
    assert options.checkpoints == PROJECT_ROOT / "savepoints" / "checkpoints"
    assert (PROJECT_ROOT / "savepoints" / "README.md").is_file()
    assert (options.rest_port, options.rpc_port) == (8081, 6123)


@pytest.mark.parametrize("kwargs", [{"slots": 0}, {"rest_port": 0}, {"rpc_port": 70000}])
def test_bad_cluster_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        ClusterOptions(**kwargs)


def test_client_config_carries_no_cluster_paths(tmp_path):
    conf = config.client_conf("jm.example:8082", tmp_path)
    assert conf["rest.address"] == "jm.example" and conf["rest.port"] == 8082
    assert conf["python.client.executable"] == sys.executable
    assert not {k for k in conf if "checkpointing.dir" in k or "savepoint-dir" in k or "pid" in k}


def test_flink_run_command_passes_the_jar_python_savepoint_and_job_flags_after_a_separator():
    submission = Submission(
        "partitioned", 2, {"MODELSERVING_KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, "/k.toml", 1000, "/sp"
    )
    cmd = submit.flink_run_command(submission, "localhost:18081", detached=True)
    connector, _ = config.job_jars()
    assert cmd[0].endswith("pyflink/bin/flink") and cmd[1] == "run"
    assert cmd[cmd.index("-m") + 1] == "localhost:18081"
    assert cmd[cmd.index("-j") + 1] == str(connector)
    assert cmd[cmd.index("-pyexec") + 1] == sys.executable == cmd[cmd.index("-pyclientexec") + 1]
    assert cmd[cmd.index("-s") + 1] == "/sp" and "-d" in cmd and cmd[cmd.index("-p") + 1] == "2"
    script = cmd.index("-py")
    assert cmd[script + 1].endswith("flink_jobs/main.py")
    # Without "--" the flink CLI would take --parallelism (and --job, as --jobmanager) for itself.
    assert cmd[script + 2] == "--"
    args = cmd[script + 3 :]
    assert args[:4] == ["--job", "partitioned", "--parallelism", "2"]
    assert args[args.index("--kafka-config") + 1] == "/k.toml"
    assert args[args.index("--bootstrap-servers") + 1] == "k:9092"


def test_the_jobs_own_flags_reach_it_and_survive_the_submission_record(tmp_path):
    submission = Submission("keyed", 1, job_args=("--selection", "arrival", "--auto-promote"))
    cmd = submit.flink_run_command(submission, "localhost:18081", detached=True)
    assert cmd[-3:] == ["--selection", "arrival", "--auto-promote"]
    submit._record(tmp_path, "0" * 32, submission, "localhost:18081")
    assert submit.recorded_submission("0" * 32, tmp_path).job_args == ("--selection", "arrival", "--auto-promote")


def test_kafka_settings_travel_as_environment_without_secrets(monkeypatch):
    settings = KafkaSettings.load(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="serving",
        sasl_password="hunter2",
        topics=Topics(data="d", results="r"),
        group_id="g",
        transactional_id_prefix="t",
    )
    env = settings.to_environment()
    assert "hunter2" not in json.dumps(env)
    for key in list(os.environ):
        if key.startswith("MODELSERVING_KAFKA"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MODELSERVING_KAFKA_SASL_PASSWORD", "hunter2")  # the job's own environment
    again = KafkaSettings.load()
    assert again == settings


def test_submission_validates_job_and_numbers():
    with pytest.raises(ConfigError, match="unknown job"):
        Submission("passthrough")
    with pytest.raises(ConfigError, match="parallelism"):
        Submission("keyed", 0)


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "ts=... level=info\nflink_jobs.main: error: no Kafka broker answered at k:1 within 5s\n"
            "org.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process "
            "exits with code: 1\nCaused by: java.lang.RuntimeException: Python process exits with code: 1",
            "no Kafka broker answered at k:1 within 5s",
        ),
        (
            "py4j.protocol.Py4JJavaError: An error occurred while calling o40.execute.\n"
            "Caused by: java.lang.RuntimeException: org.apache.flink.runtime.client.JobInitializationException: "
            "Could not start the JobMaster.\n\tat x.y(Z.java:1)\n"
            "Caused by: java.io.FileNotFoundException: Cannot find checkpoint or savepoint file/directory "
            "'/tmp/nope' on file system 'file'.\n\t... 5 more\n"
            "Caused by: java.lang.RuntimeException: Python process exits with code: 1",
            "Cannot find checkpoint or savepoint file/directory '/tmp/nope' on file system 'file'.",
        ),
        ("something broke\n\tat a.b(C.java:1)\n", "something broke"),
        ("", "no output"),
    ],
)
def test_the_failure_of_flink_run_is_one_line(output, line):
    assert submit._failure_line(output) == line


def test_savepoint_paths_are_checked_against_the_local_cluster_only(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "cluster.json").write_text(json.dumps({"rest": "localhost:18081"}))
    with pytest.raises(ConfigError, match="does not exist"):
        submit._check_savepoint(str(tmp_path / "nope"), "127.0.0.1:18081", state)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no _metadata"):
        submit._check_savepoint((tmp_path / "empty").as_uri(), "localhost:18081", state)
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "_metadata").write_bytes(b"x")
    submit._check_savepoint((tmp_path / "sp").as_uri(), "localhost:18081", state)
    # Another cluster may see paths this machine does not: Flink judges those.
    submit._check_savepoint(str(tmp_path / "nope"), "flink.example:8081", state)
    submit._check_savepoint("s3://bucket/savepoint-1", "localhost:18081", state)


def test_submissions_are_recorded_for_upgrade(tmp_path):
    submission = Submission("keyed", 2, {"MODELSERVING_KAFKA_GROUP_ID": "g"}, None, 1500)
    submit._record(tmp_path, JOB, submission, "localhost:8081")
    assert submit.recorded_submission(JOB, tmp_path) == submission
    assert submit.recorded_submission("f" * 32, tmp_path) is None


def test_job_jars_are_the_connector_and_the_projects_helpers_not_the_broker(tmp_path):
    for path in ("connector/flink-sql-connector-kafka-5.0.0-2.2.jar", "kafka/kafka_2.13-4.1.1.jar", "serving/x.jar"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    connector, others = config.job_jars(tmp_path)
    assert connector.name == "flink-sql-connector-kafka-5.0.0-2.2.jar"
    assert [j.name for j in others] == ["x.jar"]
    with pytest.raises(ConfigError, match="make jars"):
        config.job_jars(tmp_path / "none")


@pytest.mark.parametrize("address", ["localhost", "host:", ":8081", "host:port", "host:99999"])
def test_bad_jobmanager_addresses_are_config_errors(address):
    with pytest.raises(ConfigError):
        config.parse_address(address)


def test_rest_on_a_closed_port_is_unreachable_in_one_line():
    port = free_port()
    with pytest.raises(ClusterUnreachable) as caught:
        FlinkRest(f"127.0.0.1:{port}", timeout=2).jobs()
    assert str(caught.value).startswith(f"no Flink cluster answered at http://127.0.0.1:{port}")
    assert "\n" not in str(caught.value)


class _FakeFlink(BaseHTTPRequestHandler):
    """Just enough of Flink's REST API: one running job, savepoints, and Flink's error format."""

    savepoint_fails = False

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == f"/jobs/{JOB}":
            self._send(200, {"jid": JOB, "state": "RUNNING", "vertices": [{"parallelism": 2, "status": "RUNNING"}]})
        elif self.path.startswith(f"/jobs/{JOB}/savepoints/"):
            if self.savepoint_fails:
                cause = {"class": "x", "stack-trace": "java.lang.IllegalStateException: disk full\n\tat a.b"}
                self._send(200, {"status": {"id": "COMPLETED"}, "operation": {"failure-cause": cause}})
            else:
                self._send(200, {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/savepoint-1"}})
        else:
            trace = "org.apache.flink.runtime.rest.NotFoundException: Job 1 not found\n\tat org.apache..."
            self._send(404, {"errors": [trace]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(202, {"request-id": "r1"})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_flink():
    server = HTTPServer(("127.0.0.1", 0), _FakeFlink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FlinkRest(f"127.0.0.1:{server.server_port}", timeout=5)
    server.shutdown()
    _FakeFlink.savepoint_fails = False


def test_rest_savepoint_returns_its_location(fake_flink):
    assert fake_flink.trigger_savepoint(JOB, "file:///sp") == "file:/sp/savepoint-1"
    assert fake_flink.parallelism(JOB) == 2


def test_rest_savepoint_failure_is_flinks_first_line(fake_flink):
    _FakeFlink.savepoint_fails = True
    with pytest.raises(SavepointError, match=r"savepoint of job \w+ failed: disk full$"):
        fake_flink.trigger_savepoint(JOB)


def test_rest_unknown_job_is_job_not_found_in_one_line(fake_flink):
    with pytest.raises(JobNotFound) as caught:
        fake_flink.job("f" * 32)
    assert str(caught.value) == f"Job 1 not found at {fake_flink.base}"


def test_cluster_status_of_a_cluster_never_started_exits_3(tmp_path, capsys):
    assert main(["cluster", "status", "--state-dir", str(tmp_path)]) == 3
    assert capsys.readouterr().out.strip() == f"flink stopped (state {tmp_path.resolve()})"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["savepoint", "xyz"], "modelserving savepoint: error: not a Flink job id (32 hex digits): 'xyz'"),
        (
            ["jobs", "--jobmanager", "nohost"],
            "modelserving jobs: error: not a JobManager address (HOST:PORT): 'nohost'",
        ),
        (
            ["stop", JOB, "--dir", "x"],
            "modelserving stop: error: --dir needs --savepoint: cancelling takes no savepoint",
        ),
        (["cluster", "start", "-D", "novalue"], "modelserving cluster: error: -D takes KEY=VALUE, got 'novalue'"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.setenv(config.JOBMANAGER_ENV, f"127.0.0.1:{free_port()}")
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_jobmanager_comes_from_the_flag_then_the_environment_then_the_local_cluster(tmp_path, monkeypatch):
    from serving.cli import build_parser
    from serving.cli.cluster import jobmanager

    monkeypatch.delenv(config.JOBMANAGER_ENV, raising=False)
    parse = build_parser().parse_args
    assert jobmanager(parse(["jobs", "--state-dir", str(tmp_path)])) == "localhost:8081"
    (tmp_path / "cluster.json").write_text(json.dumps({"rest": "localhost:18081"}))
    assert jobmanager(parse(["jobs", "--state-dir", str(tmp_path)])) == "localhost:18081"
    monkeypatch.setenv(config.JOBMANAGER_ENV, "jm:8081")
    assert jobmanager(parse(["jobs", "--state-dir", str(tmp_path)])) == "jm:8081"
    assert jobmanager(parse(["jobs", "--jobmanager", "other:1", "--state-dir", str(tmp_path)])) == "other:1"


def test_template_placeholders_are_all_known():
    values = yaml.safe_load((config.CONF_TEMPLATE_DIR / "config.yaml").read_text()).values()
    names = {name for value in values for name in re.findall(r"\$\{(\w+)\}", str(value))}
    assert names == {
        "LOG_DIR", "PID_DIR", "RPC_PORT", "REST_PORT", "REST_BIND_ADDRESS", "JOBMANAGER_MEMORY", "SLOTS",
        "TASKMANAGER_MEMORY", "CHECKPOINT_DIR", "SAVEPOINT_DIR", "PYTHON", "CONNECTOR_JAR",
    }  # fmt: skip
    assert Path(config.flink_home() / "bin" / "start-cluster.sh").is_file()


def test_cluster_control_never_imports_pyflink():
    parts = ("config", "errors", "local", "rest", "submit", "upgrade")
    modules = ", ".join(f"serving.ops.cluster.{part}" for part in parts)
    code = f"import sys, {modules}, serving.cli.cluster; print(any(m.startswith('pyflink') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_local_standalone_cluster_binds_rest_to_loopback(tmp_path):
    import yaml

    from serving.ops.cluster.config import ClusterOptions
    from serving.ops.cluster.local import LocalCluster

    conf_dir = LocalCluster(tmp_path / "state").configure(ClusterOptions())
    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    assert conf["rest.bind-address"] == "127.0.0.1"
    other = LocalCluster(tmp_path / "other").configure(ClusterOptions(rest_bind_address="10.1.2.3"))
    assert yaml.safe_load((other / "config.yaml").read_text())["rest.bind-address"] == "10.1.2.3"


def test_scripts_and_flink_run_never_inherit_a_local_jobs_loopback_worker(tmp_path, monkeypatch):
    """A process that ran a local PyFlink job holds its Python worker: no TaskManager or client it starts uses it.

    Before the fix, a TaskManager started from such a process ran its jobs' Python code in that process,
    which took the TaskManager's environment (JAVA_HOME="" among it) into its own.
    """
    monkeypatch.setenv("PYTHON_LOOPBACK_SERVER_ADDRESS", "localhost:1")
    monkeypatch.setenv("PYFLINK_GATEWAY_DISABLED", "true")
    monkeypatch.setenv("FLINK_CONF_DIR", "/elsewhere")
    cluster_env = LocalCluster(tmp_path).script_env()
    client_env = submit.client_environment({"MODELSERVING_KAFKA_GROUP_ID": "g"}, tmp_path / "conf", tmp_path / "log")
    for env in (cluster_env, client_env):
        assert "PYTHON_LOOPBACK_SERVER_ADDRESS" not in env and "PYFLINK_GATEWAY_DISABLED" not in env
        assert env["PATH"] == os.environ["PATH"]
    assert cluster_env["FLINK_CONF_DIR"] == str(tmp_path / "conf")
    assert client_env["FLINK_CONF_DIR"] == str(tmp_path / "conf") and client_env["MODELSERVING_KAFKA_GROUP_ID"] == "g"
