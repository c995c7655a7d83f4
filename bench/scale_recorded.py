"""The bench's "recorded" reading: Prometheus evaluates the shipped recording rules
(examples/prometheus/autosre-recording-rules.yml) and the engine's policy reads the records,
as docs/prometheus.md describes for large fleets. A tuned setting, measured beside the
default: the rules are loaded for that reading only (a reload), so the other readings'
Prometheus does not also evaluate them.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.fixtures.prometheus import PrometheusServer

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "prometheus" / "autosre-recording-rules.yml"
RECORDS_TIMEOUT = 120.0  # for every host's records to appear after the reload


def recorded_policy(policy: Path, target: Path) -> Path:
    """The policy with each kind's query replaced by its record (the docs' fragment)."""
    data = yaml.safe_load(policy.read_text())
    for kind, section in data["signals"].items():
        section["query"] = f"instance:autosre_{kind}:percent"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


@contextmanager
def recording_rules(server: PrometheusServer, hosts: int) -> Iterator[float]:
    """Load the recording rules into the running server (a reload) until the block ends;
    yields how long every host's records took to appear (s)."""
    assert server.proc is not None
    config_path = server.workdir / "prometheus.yml"
    original = config_path.read_text()
    config = json.loads(original)
    config["rule_files"] = [str(RULES)]
    config_path.write_text(json.dumps(config))
    server.proc.send_signal(signal.SIGHUP)
    started = time.monotonic()
    try:
        while True:
            found = [
                len(server.query(f"instance:autosre_{kind}:percent"))
                for kind in ("high_cpu", "memory_pressure", "disk_full", "service_down")
            ]
            if min(found) >= hosts:
                break
            if time.monotonic() - started > RECORDS_TIMEOUT:
                raise SystemExit(f"bench: records for {found} of {hosts} hosts after the reload")
            time.sleep(1.0)
        yield time.monotonic() - started
    finally:
        config_path.write_text(original)
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGHUP)
