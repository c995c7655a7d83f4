"""The compose stack's Prometheus and Alertmanager configs, checked as the containers see
them: the files are laid out where docker-compose.yml mounts them, then promtool, amtool
and a real Prometheus read them."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import COMPOSE_DIR, ROOT, run, tool
from tests.fixtures.prometheus import PROMETHEUS, PrometheusServer, free_port

EXAMPLE_ALERTMANAGER = ROOT / "examples" / "alertmanager" / "alertmanager.yml"


def config_flag(spec: dict[str, Any], flag: str) -> str:
    """The value of ``--flag=value`` in a service's command."""
    for arg in spec["command"]:
        if arg.startswith(f"--{flag}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"no --{flag} in {spec['command']}")


def container_view(spec: dict[str, Any], under: str, into: Path) -> Path:
    """Copy the service's bind mounts below ``under`` into ``into``, where they would be."""
    for volume in spec["volumes"]:
        target = Path(volume["target"])
        if volume["type"] == "bind" and target.is_relative_to(under):
            copy = into / target.relative_to(under)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(volume["source"], copy)
    return into


def api(url: str) -> Any:
    """The ``data`` of a Prometheus API answer."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]


def wait_for_targets(base: str, jobs: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The active targets once every job has some (discovery syncs every 5 s at start)."""
    deadline = time.monotonic() + timeout
    while True:
        targets: list[dict[str, Any]] = api(f"{base}/api/v1/targets")["activeTargets"]
        if len({t["labels"]["job"] for t in targets}) >= jobs or time.monotonic() > deadline:
            return targets
        time.sleep(0.2)


@pytest.fixture
def prometheus_dir(compose_model: dict[str, Any], tmp_path: Path) -> Path:
    """The Prometheus container's /etc/prometheus, as mounted."""
    spec = compose_model["services"]["prometheus"]
    config = Path(config_flag(spec, "config.file"))
    view = container_view(spec, str(config.parent), tmp_path / "etc")
    assert (view / config.name).is_file(), f"{config} is not mounted"
    return view


def test_promtool_checks_the_config_and_the_rules_it_loads(prometheus_dir: Path) -> None:
    done = run([tool("promtool"), "check", "config", str(prometheus_dir / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rule files found" in done.stdout + done.stderr


def test_the_mounted_rules_are_the_shipped_ones(compose_model: dict[str, Any]) -> None:
    spec = compose_model["services"]["prometheus"]
    sources = [Path(v["source"]) for v in spec["volumes"] if v["type"] == "bind"]
    rules = ROOT / "examples" / "prometheus" / "alert-rules.yml"
    assert rules in sources
    done = run([tool("promtool"), "check", "rules", str(rules)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_names_each_series_after_its_inventory_host(prometheus_dir: Path) -> None:
    # A real Prometheus reads the config; its targets' labels after relabelling must be
    # the inventory's host names, whichever job scrapes them.
    if not PROMETHEUS.exists():
        tool("prometheus")  # skips or fails with the package to install
    workdir = prometheus_dir
    config = yaml.safe_load((workdir / "prometheus.yml").read_text())
    server = PrometheusServer(workdir=workdir, port=free_port())
    server.start()
    try:
        targets = wait_for_targets(server.url, len(config["scrape_configs"]))
        groups = api(f"{server.url}/api/v1/rules")["groups"]
    finally:
        server.stop()
    inventory = yaml.safe_load((COMPOSE_DIR / "inventory.yml").read_text())
    hosts = set(inventory["all"]["children"]["web"]["hosts"])
    by_job: dict[str, set[str]] = {}
    for target in targets:
        by_job.setdefault(target["labels"]["job"], set()).add(target["labels"]["instance"])
    for job in ("node", "cpu", "nginx"):
        assert by_job[job] == hosts, f"job {job}: {by_job[job]}"
    probe = next(t for t in targets if t["labels"]["job"] == "nginx")
    assert probe["scrapeUrl"].startswith("http://blackbox:9115/probe?")
    assert {j["job_name"] for j in config["scrape_configs"]} == set(by_job)
    loaded: dict[str, int] = {}
    for group in groups:  # the fleet's alerts, and AutoSRE's own (autosre-alerts.yml)
        name = Path(group["file"]).name
        loaded[name] = loaded.get(name, 0) + len(group["rules"])
    shipped = {
        name: sum(
            len(g["rules"])
            for g in yaml.safe_load((ROOT / "examples" / "prometheus" / name).read_text())["groups"]
        )
        for name in ("alert-rules.yml", "autosre-alerts.yml")
    }
    assert loaded == shipped


def test_amtool_checks_the_alertmanager_config(
    compose_model: dict[str, Any], tmp_path: Path
) -> None:
    spec = compose_model["services"]["alertmanager"]
    config = Path(config_flag(spec, "config.file"))
    view = container_view(spec, str(config.parent), tmp_path)
    done = run([tool("amtool"), "check-config", str(view / config.name)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_routes_like_the_example_to_the_web_service(
    compose_model: dict[str, Any],
) -> None:
    compose = yaml.safe_load((COMPOSE_DIR / "alertmanager.yml").read_text())
    example = yaml.safe_load(EXAMPLE_ALERTMANAGER.read_text())
    hook = compose["receivers"][1]["webhook_configs"][0]
    example_hook = example["receivers"][1]["webhook_configs"][0]
    url = hook.pop("url")
    token_file = hook["http_config"]["authorization"].pop("credentials_file")
    example_hook.pop("url")
    example_hook["http_config"]["authorization"].pop("credentials_file")
    assert compose == example, "only the URL and the token's path may differ from the example"
    # The URL is the web service's receiver; both sides read the same token file.
    services = compose_model["services"]
    web_port = services["web"]["command"][services["web"]["command"].index("--port") + 1]
    assert url == f"http://web:{web_port}/api/v1/alerts"
    am_mounts = {v["target"]: v["source"] for v in services["alertmanager"]["volumes"]}
    web_mounts = {v["target"]: v["source"] for v in services["web"]["volumes"]}
    web_token = Path(services["web"]["environment"]["AUTOSRE_ALERTS_TOKEN_FILE"])
    assert am_mounts[str(Path(token_file).parent)] == web_mounts[str(web_token.parent)]
    assert Path(token_file).name == web_token.name
    assert set(services["alertmanager"]["networks"]) & set(services["web"]["networks"])


def test_the_demo_policy_passes_policy_check() -> None:
    autosre = tool("autosre")
    done = run([autosre, "policy", "check", str(COMPOSE_DIR / "policy.yaml")], cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    policy = yaml.safe_load((COMPOSE_DIR / "policy.yaml").read_text())
    # Alertmanager's alerts for the kinds the demo watches reach them.
    assert set(policy["alerts"]["kinds"].values()) == set(policy["signals"])
