"""docker-compose.yml, the Dockerfile and deploy/ checked without a Docker engine.

The compose file is validated against the Compose Specification schema (as
vendored by check-jsonschema), and every name in it is resolved against the
repository: consumer names against the registry, CLI commands against the
parser, mounted files against the tree, PIPELINE_* variables against the
settings. tests/e2e/test_compose_services.py then runs each service.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from importlib import metadata

import jsonschema
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from consumers.admin_notifier import NotifierSettings
from pipeline.app import load_app
from pipeline.commands.cli import build_parser
from pipeline.commands.topology import definitions
from pipeline.console.settings import ConsoleSettings
from pipeline.settings import PipelineSettings
from tests.support import compose

ROOT = compose.ROOT
WORKERS = load_app("consumers.registry:app").worker_names


@pytest.fixture(scope="module")
def document() -> dict:
    return compose.load()


def _validator() -> jsonschema.protocols.Validator:
    schema = compose.compose_schema()
    return jsonschema.validators.validator_for(schema)(schema)


def _settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for key in [k for k in os.environ if k.startswith("PIPELINE_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return PipelineSettings()


def test_compose_file_follows_the_compose_specification(document):
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))

    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_schema_check_would_catch_a_misspelled_key(document):
    broken = copy.deepcopy(document)
    broken["services"]["billing"]["stop_grace_periode"] = "40s"

    assert list(_validator().iter_errors(broken))


def test_every_variable_without_a_default_is_in_the_env_example():
    text = compose.COMPOSE_FILE.read_text()
    example = compose.read_env_file()

    required = {name for name, op in compose.variables_used(text).items()
                if op in (None, ":?", "?")}

    assert required <= set(example), f"add to .env.example: {sorted(required - set(example))}"
    with pytest.raises(compose.InterpolationError, match="_PASSWORD"):
        compose.load({"RABBITMQ_USER": "someone"})


def test_no_credentials_are_written_into_the_compose_file_or_the_image():
    text = compose.COMPOSE_FILE.read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert "guest" not in text
    admin = ("${RABBITMQ_USER:?set RABBITMQ_USER in .env (see .env.example)}:"
             "${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD in .env (see .env.example)}")
    for credentials in re.findall(r"amqp://(.*)@rabbitmq", text):
        role = re.fullmatch(r"pipeline-([a-z-]+):\$\{PIPELINE_([A-Z_]+)_PASSWORD:\?set "
                            r"PIPELINE_\2_PASSWORD in \.env \(see \.env\.example\)\}",
                            credentials)
        assert credentials == admin or (
            role and role.group(1).replace("-", "_").upper() == role.group(2)), credentials
    assert not re.search(r"(?i)password|amqp://|secret", dockerfile)
    assert {".env", ".git", ".venv"} <= set(ignored)


def test_every_consumer_and_the_admin_notifier_has_its_own_service(document):
    commands = {tuple(s["command"]) for s in compose.our_services(document).values()}

    for name in WORKERS:
        assert ("python", "-m", "consumers", name) in commands, name


def test_every_command_of_ours_is_one_the_project_has(document):
    parser = build_parser()
    for name, service in compose.our_services(document).items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form (a list)"
        if command[:3] == ["python", "-m", "consumers"]:
            assert command[3:], name
            assert command[3] in WORKERS, name
        elif command[0] == "pipeline":
            parser.parse_args(command[1:])  # exits (fails the test) on an unknown command
        elif command[0] == "sh":
            script = compose.bind_mounts(service).get(command[1])
            assert script is not None, f"{name}: {command[1]} is not mounted"
            assert script.is_file(), f"{name}: {script} is missing"
            subprocess.run(["sh", "-n", str(script)], check=True)
        else:
            pytest.fail(f"{name}: unexpected command {command}")


def test_every_mounted_file_exists_in_the_repository(document):
    for name, service in document["services"].items():
        for target, source in compose.bind_mounts(service).items():
            assert source.is_file(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"


def test_pipeline_variables_are_settings_the_code_reads(document, monkeypatch):
    fields = {f"PIPELINE_{name.upper()}" for name in PipelineSettings.model_fields}
    fields |= {f"PIPELINE_NOTIFIER_{name.upper()}" for name in NotifierSettings.model_fields}
    fields |= {f"PIPELINE_CONSOLE_{name.upper()}" for name in ConsoleSettings.model_fields}
    source = "\n".join(
        p.read_text() for folder in ("pipeline", "consumers") for p in (ROOT / folder).rglob("*.py")
    )
    for name, service in compose.our_services(document).items():
        environment = compose.environment_of(service)
        for key in environment:
            if key.startswith("PIPELINE_"):
                assert key in fields or f'"{key}"' in source, f"{name}: {key} is read by nothing"
        settings = _settings_from(environment, monkeypatch)  # values must validate
        assert settings.vhost == "/"
        assert settings.management_url.get_secret_value().startswith("http://")


def test_workers_wait_for_a_healthy_broker_and_an_applied_topology(document):
    services = document["services"]
    for name in WORKERS:
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["topology"]["condition"] == "service_completed_successfully"
    assert services["topology"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            if condition["condition"] == "service_healthy":
                check = services[target].get("healthcheck", {})
                assert check.get("test"), f"{name} waits for {target}, which has no check"
                assert not check.get("disable"), f"{name} waits for {target}, check disabled"


def test_workers_check_readiness_on_the_port_their_health_server_uses(document, monkeypatch):
    for name in WORKERS:
        service = document["services"][name]
        settings = _settings_from(compose.environment_of(service), monkeypatch)
        assert settings.health_port == 8000
        assert settings.health_host == "0.0.0.0"
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "pipeline.ops.health",
                                                  "/readyz"]
        assert "8000" in service["expose"]
        assert "ports" not in service, f"{name}: host ports would break --scale"
        assert "container_name" not in service, f"{name}: breaks --scale"


def test_the_console_listens_on_its_published_port_and_keeps_its_audit_on_a_volume(
        document, monkeypatch):
    service = document["services"]["console"]
    environment = compose.environment_of(service)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    console = ConsoleSettings()
    assert (console.host, console.port) == ("0.0.0.0", 8080)
    assert service["ports"] == [f"127.0.0.1:{console.port}:{console.port}"]
    assert console.audit_url == "sqlite:////var/lib/pipeline-console/audit.db"
    assert "console-data:/var/lib/pipeline-console" in service["volumes"]
    assert str(console.port) in " ".join(service["healthcheck"]["test"])


def test_stop_grace_period_covers_the_shutdown_timeout(document, monkeypatch):
    for name in WORKERS:
        service = document["services"][name]
        settings = _settings_from(compose.environment_of(service), monkeypatch)
        assert compose.seconds(service["stop_grace_period"]) >= settings.shutdown_timeout_s


def test_services_restart_but_the_one_shot_topology_does_not(document):
    services = document["services"]
    for name in [*WORKERS, "rabbitmq", "jaeger", "console"]:
        assert services[name]["restart"] in ("always", "unless-stopped"), name
    assert services["topology"]["restart"] == "no"
    assert services["topology"]["command"] == ["pipeline", "topology", "apply"]
    assert services["demo-producer"]["profiles"] == ["demo"]


def test_other_images_are_pinned_and_rabbitmq_is_a_current_management_image(document):
    for name, service in document["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: pin a version tag"
        assert not image.endswith(":latest"), name
    rabbitmq = document["services"]["rabbitmq"]["image"]
    assert re.fullmatch(r"rabbitmq:(3\.13|4\.\d+)[\w.-]*-management", rabbitmq)
    assert document["services"]["jaeger"]["image"].startswith("jaegertracing/")
    worker = compose.environment_of(document["services"]["billing"])
    assert worker["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_rabbitmq_imports_the_user_from_env_and_then_the_exported_topology(document):
    rabbitmq = document["services"]["rabbitmq"]
    conf = (ROOT / "deploy/rabbitmq.conf").read_text()
    [path] = re.findall(r"^definitions\.local\.path\s*=\s*(\S+)", conf, re.M)
    mounts = compose.bind_mounts(rabbitmq)
    [config] = [c for c in rabbitmq["configs"] if c["source"] == "rabbitmq-user"]
    user_file = config["target"]
    topology_file = next(t for t, s in mounts.items() if s.name == "definitions.json")

    # Imported in name order: the user (and vhost "/") before the topology.
    assert sorted([user_file, topology_file]) == [f"{path}/10-user.json",
                                                  f"{path}/20-topology.json"]
    assert "/etc/rabbitmq/conf.d/20-pipeline.conf" in mounts
    user = json.loads(document["configs"][config["source"]]["content"])
    assert user["users"][0]["name"] == "pipeline"
    assert user["users"][0]["password"] == "change-me-please"
    assert user["permissions"][0] == {"user": "pipeline", "vhost": "/", "configure": ".*",
                                      "write": ".*", "read": ".*"}
    assert "rabbitmq_management" in (ROOT / "deploy/enabled_plugins").read_text()


def test_exported_definitions_match_what_the_workers_declare(document, monkeypatch):
    settings = _settings_from(compose.environment_of(document["services"]["billing"]),
                              monkeypatch)
    topology = load_app(settings.app).topology(settings.ladder, settings.delivery_limit)
    exported = json.loads((ROOT / "deploy/definitions.json").read_text())

    assert exported == json.loads(json.dumps(definitions(topology, settings.vhost))), (
        "deploy/definitions.json is stale: run "
        "`.venv/bin/pipeline topology export deploy/definitions.json`"
    )


def test_dockerfile_builds_in_two_stages_and_runs_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.M)
    runtime = text.split("AS runtime", 1)[1]

    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert re.search(r"^USER (?!root)\w+", runtime, re.M)
    assert "pipeline.ops.health" in re.search(r"^HEALTHCHECK.*(?:\n\s+.*)*", runtime, re.M)[0]
    assert not re.search(r"apt-get|gcc|build-essential", runtime)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is missing"


def test_requirements_lock_pins_every_runtime_dependency_consistently():

    lock = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([\w.-]+)==(\S+)$",
                                        (ROOT / "requirements.lock").read_text(), re.M)
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    top = [Requirement(r) for r in [*project["dependencies"],
                                    *project["optional-dependencies"]["otel"]]]
    for requirement in top:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not pinned: run deploy/lock_requirements.py"
        assert requirement.specifier.contains(lock[name], prereleases=True), name
    # Where the venv has the locked version, its own dependencies are pinned too.
    for name, version in lock.items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if installed.version != version:
            continue
        for text in installed.requires or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                assert canonicalize_name(child.name) in lock, f"{name} needs {child.name}"


def test_the_shipped_broker_config_caps_message_size_above_what_our_publishers_send():
    conf = (compose.ROOT / "deploy" / "rabbitmq.conf").read_text()
    found = re.findall(r"^max_message_size\s*=\s*(\d+)\s*$", conf, re.MULTILINE)
    assert len(found) == 1, "deploy/rabbitmq.conf sets no max_message_size"
    broker_max = int(found[0])
    settings = PipelineSettings()
    # An event of the largest size we send, plus the failure headers a copy of it
    # carries (error text, traceback, bookkeeping), fits; far bigger does not.
    largest_copy = (settings.max_message_bytes + settings.error_header_bytes
                    + settings.traceback_header_bytes + 4096)
    assert largest_copy <= broker_max <= 4 * settings.max_message_bytes


def test_services_log_in_as_their_own_role_and_only_users_apply_is_the_administrator(
    document
):
    """Least privilege in compose: pipeline-<role> per service, the admin for `users` only."""
    expected = {"users": None, "topology": "deployer", "billing": "billing",
                "shipping": "shipping", "audit": "audit", "admin-notifier": "admin-notifier",
                "ledger": "ledger", "console": "operator", "demo-producer": "publisher"}
    services = compose.our_services(document)
    assert set(services) == set(expected)
    for name, service in services.items():
        env = service["environment"]
        for key in ("PIPELINE_AMQP_URL", "PIPELINE_MANAGEMENT_URL"):
            user = re.match(r"\w+://([^:]+):", env[key]).group(1)
            if expected[name] is None:
                assert user == compose.read_env_file()["RABBITMQ_USER"], (name, key, user)
            else:
                assert user == f"pipeline-{expected[name]}", (name, key, user)
    # the passwords `users apply` sets are the ones the services log in with
    apply = services["users"]
    assert apply["command"] == ["pipeline", "users", "apply", "--allow-plain-http"]
    passwords = json.loads(apply["environment"]["PIPELINE_USER_PASSWORDS"])
    example = compose.read_env_file()
    for role in {r for r in expected.values() if r}:
        var = f"PIPELINE_{role.replace('-', '_').upper()}_PASSWORD"
        assert passwords[role] == example[var], role
    assert services["topology"]["depends_on"]["users"]["condition"] == (
        "service_completed_successfully")


NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")


def test_the_cluster_profile_adds_two_nodes_that_find_node_1_by_config(document):
    services = document["services"]
    conf = (ROOT / "deploy/rabbitmq-cluster.conf").read_text()
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+\s*=\s*(\S+)$",
                        conf, re.M)

    assert re.search(r"^cluster_formation\.peer_discovery_backend\s*=\s*classic_config$",
                     conf, re.M)
    # The node names discovery looks for are the services' node names (rabbit@hostname).
    assert listed == [f"rabbit@{services[name]['hostname']}" for name in NODES]
    assert [services[name].get("profiles") for name in NODES] == [None, ["cluster"], ["cluster"]]
    # Without the profile node 1 runs alone and discovers nothing.
    assert "/etc/rabbitmq/conf.d/30-cluster.conf" not in compose.bind_mounts(services["rabbitmq"])
    for name in NODES[1:]:
        node = services[name]
        mounts = compose.bind_mounts(node)
        cluster_conf = mounts["/etc/rabbitmq/conf.d/30-cluster.conf"]
        assert cluster_conf == ROOT / "deploy/rabbitmq-cluster.conf"
        assert compose.bind_mounts(services["rabbitmq"]).items() <= mounts.items(), (
            f"{name}: not the same settings and definitions as node 1")
        assert node["image"] == services["rabbitmq"]["image"]
        assert node["healthcheck"] == services["rabbitmq"]["healthcheck"]
        assert "ports" not in node  # reached on compose's network by the node list
    # Joined one at a time, node 1 first: 2 and 3 cannot form a cluster of their own.
    assert services["rabbitmq-2"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert services["rabbitmq-3"]["depends_on"] == {
        "rabbitmq-2": {"condition": "service_healthy"}}
    # Each node keeps its own data.
    data = [next(v for v in services[n]["volumes"] if v.endswith(":/var/lib/rabbitmq"))
            for n in NODES]
    assert len(set(data)) == 3
    assert {v.split(":")[0] for v in data} <= set(document["volumes"])


def test_every_node_has_the_erlang_cookie_from_the_environment(document):
    raw = compose.load_raw()
    assert compose.variables_used(compose.COMPOSE_FILE.read_text())[
        "RABBITMQ_ERLANG_COOKIE"] == ":?"
    assert raw["configs"]["erlang-cookie"]["content"].startswith("${RABBITMQ_ERLANG_COOKIE:?")
    cookie = compose.read_env_file()["RABBITMQ_ERLANG_COOKIE"]
    assert document["configs"]["erlang-cookie"]["content"] == cookie
    for name in NODES:
        [mount] = [c for c in document["services"][name]["configs"]
                   if c["source"] == "erlang-cookie"]
        # Erlang refuses a cookie file others can read; the image runs as uid 999.
        assert mount == {"source": "erlang-cookie", "target": "/var/lib/rabbitmq/.erlang.cookie",
                         "uid": "999", "gid": "999", "mode": 0o400}, name


def test_every_service_of_ours_is_given_all_three_nodes(document, monkeypatch):
    for name, service in compose.our_services(document).items():
        settings = _settings_from(compose.environment_of(service), monkeypatch)
        amqp = [re.match(r"amqps?://[^@]*@([^:/]+)", u).group(1) for u in settings.amqp_urls]
        http = [re.match(r"https?://[^@]*@([^:/]+)", u).group(1)
                for u in settings.management_urls]
        assert amqp == list(NODES), name
        assert http == list(NODES), name
        # The first node answers when the profile is off (the others do not resolve).
        assert settings.amqp_urls[0].endswith("@rabbitmq:5672/"), name


def test_the_topology_is_applied_after_the_last_node_joined_when_the_profile_runs(document):
    depends = document["services"]["topology"]["depends_on"]

    assert depends["rabbitmq-3"] == {"condition": "service_healthy", "required": False}
    assert depends["rabbitmq"]["condition"] == "service_healthy"
