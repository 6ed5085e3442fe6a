"""docker/: the compose file and the Dockerfile, checked without building or running anything.

Images cannot be built here. Where a docker client with the compose plugin is
installed, ``docker compose config`` (client-side only, no engine needed)
validates the file; in any case the YAML is parsed and its services, images,
commands and references are checked, and every ``modelserving`` command in it
is parsed by the real CLI parser.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

import pytest
import yaml

from serving.cli import build_parser
from serving.ops.cluster.config import job_jars
from tests.support.reference import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
SERVICES = {"kafka", "topics", "jobmanager", "taskmanager", "submit", "publish-models", "publish-data"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="no docker client with the compose plugin here")
def test_docker_compose_config_accepts_the_file():
    proc = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_services_kafka_kraft_flink_submitter_and_providers(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"], "KRaft: the broker is its own controller"
    assert not any("zookeeper" in str(v).lower() for v in kafka["environment"].values())
    assert services["jobmanager"]["command"] == ["jobmanager"]
    assert services["taskmanager"]["command"] == ["taskmanager"]
    assert services["submit"]["restart"] == "no" and services["topics"]["restart"] == "no"
    for name in SERVICES - {"kafka"}:
        service = services[name]
        assert service["image"] == "modelserving-flink:dev"
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert service["environment"]["MODELSERVING_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_every_modelserving_command_parses(compose):
    parser = build_parser()
    commands = [s["command"] for s in compose["services"].values() if s.get("command", [""])[0] == "modelserving"]
    assert {c[1] for c in commands} == {"kafka", "submit", "publish"}
    for command in commands:
        args = parser.parse_args(command[1:])
        assert callable(args.handler), command
    submit = parser.parse_args(compose["services"]["submit"]["command"][1:])
    assert submit.detached and submit.job == "keyed"


def test_references_between_services_and_volumes_resolve(compose):
    services, volumes = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in {"service_healthy", "service_started", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source in volumes, f"{name} mounts undeclared volume {source}"
    # Savepoints and checkpoints must be on storage the JobManager and TaskManagers share.
    shared = "savepoints:/opt/modelserving/savepoints"
    assert shared in services["jobmanager"]["volumes"] and shared in services["taskmanager"]["volumes"]


def test_dockerfile_python_311_sources_exist_and_the_connector_is_the_one_make_jars_fetches():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    # The context is the repository root; the ignore file sends only what is copied (never .venv or .cache).
    lines = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "**", "exclude everything first"
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (PROJECT_ROOT / source).exists(), f"COPY source {source} is missing"
            assert {f"!{source}", f"!{source}/"} & set(ignore), f"COPY source {source} is not let into the context"
    checksum, url = re.search(r"ADD --checksum=sha256:(\w+) \\\s+(\S+)", text).groups()
    connector, _ = job_jars()
    assert url.endswith("/" + connector.name), "the image and `make jars` must use the same connector"
    assert hashlib.sha256(connector.read_bytes()).hexdigest() == checksum


def test_container_flink_config_and_entrypoint():
    conf = yaml.safe_load((DOCKER / "conf" / "config.yaml").read_text())
    assert conf["jobmanager.rpc.address"] == "jobmanager" and conf["rest.address"] == "jobmanager"
    assert conf["python.executable"] == "/usr/local/bin/python" and conf["python.execution-mode"] == "process"
    assert conf["execution.checkpointing.savepoint-dir"] == "file:///opt/modelserving/savepoints"
    connector, _ = job_jars()
    assert conf["pipeline.jars"].endswith("/.cache/jars/connector/" + connector.name)
    entrypoint = DOCKER / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111, "the entrypoint must be executable"
    assert subprocess.run(["bash", "-n", str(entrypoint)]).returncode == 0
    text = entrypoint.read_text()
    assert 'jobmanager.sh" start-foreground' in text and 'taskmanager.sh" start-foreground' in text
