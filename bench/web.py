"""Server time of the web UI's heavy pages and the API on a large store, SQLite and PostgreSQL.

Seeds 100,000 incidents over 1,000 hosts (every 10th with 2 decisions, 1 run and 5
events; every 100th with an approval) and 1,000 live host states, with bulk core
inserts, into a fresh SQLite file and a fresh PostgreSQL database
(``autosre_bench_<hex>`` on 127.0.0.1:5432, dropped afterwards). Then times each
request through the Flask test client, signed in as a viewer (pages) or with a viewer
token (API): p50/p95/max over ``--requests`` each. Pages that do not exist (404) are
skipped. Prints a table and writes bench/results/web.json; the target is p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token, create_user
from engine.settings import load_settings
from engine.store import open_store
from engine.store.migrate import migrate_to_head
from engine.store.models import Base
from webui import create_app

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOSTS = 1_000
CHUNK = 10_000
PASSWORD = "bench password, long enough"
TARGET_MS = 100.0
STATUSES = ["resolved"] * 90 + ["escalated"] * 5 + ["failed"] * 2 + ["open"] * 2
STATUSES += ["awaiting_approval"]


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _host(i: int) -> str:
    return f"host-{i % HOSTS:04d}"


def _bulk(sessions: sessionmaker[Session], name: str, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    table = _table(name)
    with sessions.begin() as session:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                session.execute(insert(table), batch)
                count += len(batch)
                batch = []
        if batch:
            session.execute(insert(table), batch)
            count += len(batch)
    return count


def seed(sessions: sessionmaker[Session], incidents: int) -> dict[str, int]:
    """Insert the fleet's history; returns the row counts."""
    now = datetime.now(tz=UTC)
    step = timedelta(seconds=300)

    def incident_rows() -> Iterator[dict[str, Any]]:
        for i in range(1, incidents + 1):
            status = STATUSES[i % len(STATUSES)]
            at = T0 + i * step
            yield {
                "id": i,
                "host": _host(i * 7),
                "kind": "memory" if i % 10 == 3 else "cpu",
                "status": status,
                "action": "restart_nginx" if i % 10 == 0 else None,
                "attempts": 1 if i % 10 == 0 else 0,
                "opened_at": at,
                "updated_at": at + step,
                "closed_at": at + step if status == "resolved" else None,
                "cpu_before": 96.0 + i % 4,
                "cpu_after": 12.0 if status == "resolved" else None,
                "summary": f"CPU above 90% for 60s on {_host(i * 7)} (incident {i})",
            }

    worked = range(10, incidents + 1, 10)  # every 10th incident has decisions, a run, events

    def run_rows() -> Iterator[dict[str, Any]]:
        for n, i in enumerate(worked, start=1):
            at = T0 + i * step
            yield {
                "id": n,
                "ident": f"run-{n:08d}",
                "action": "restart_nginx",
                "playbook": "restart_nginx.yml",
                "hosts": [_host(i * 7)],
                "check_mode": False,
                "trigger": "engine",
                "requested_by": "engine",
                "extra_var_names": [],
                "status": "successful",
                "rc": 0,
                "stats": {_host(i * 7): {"ok": 4, "changed": 1}},
                "artifact_dir": f"/nonexistent/runs/run-{n:08d}",
                "error": None,
                "created_at": at,
                "started_at": at,
                "ended_at": at + timedelta(seconds=8),
            }

    def decision_rows() -> Iterator[dict[str, Any]]:
        for n, i in enumerate(worked, start=1):
            for k in (0, 1):
                yield {
                    "id": 2 * n - 1 + k,
                    "incident_id": i,
                    "host": _host(i * 7),
                    "created_at": T0 + i * step + timedelta(seconds=k),
                    "planner": "rules",
                    "action": "restart_nginx",
                    "confidence": 0.9,
                    "rationale": "sustained high CPU; nginx workers hot",
                    "verdict": "deny" if k == 0 else "execute",
                    "verdict_action": None,
                    "rule": "cooldown" if k == 0 else "allowed",
                    "reason": "cooling down" if k == 0 else "within policy",
                    "overridden": False,
                    "run_id": n if k == 1 else None,
                    "outcome": "recovered" if k == 1 else None,
                    "cached": False,
                }

    def event_rows() -> Iterator[dict[str, Any]]:
        kinds = ("opened", "decided", "run_started", "run_ended", "verified")
        for n, i in enumerate(worked, start=1):
            for k, kind in enumerate(kinds):
                yield {
                    "at": T0 + i * step + timedelta(seconds=k),
                    "kind": kind,
                    "host": _host(i * 7),
                    "incident_id": i,
                    "run_id": n if k >= 2 else None,
                    "message": f"{kind} for incident {i}",
                    "data": {},
                }

    def approval_rows() -> Iterator[dict[str, Any]]:
        for n, i in enumerate(worked, start=1):
            if i % 100 == 0:
                pending = i > incidents - 1000
                yield {
                    "incident_id": i,
                    "decision_id": 2 * n - 1,
                    "host": _host(i * 7),
                    "action": "restart_nginx",
                    "status": "pending" if pending else "approved",
                    "rationale": "needs a human",
                    "requested_at": now if pending else T0 + i * step,
                    "expires_at": now + timedelta(hours=1) if pending else T0 + i * step,
                    "decided_at": None if pending else T0 + i * step,
                    "decided_by": None if pending else "ops",
                }

    def host_rows() -> Iterator[dict[str, Any]]:
        for h in range(HOSTS):
            status = "HIGH_CPU" if h % 20 == 0 else "UNKNOWN" if h % 50 == 1 else "NORMAL"
            yield {
                "host": _host(h),
                "status": status,
                "value": 95.0 if status == "HIGH_CPU" else 20.0 + h % 30,
                "reason": "above 90% for 60s" if status == "HIGH_CPU" else "normal",
                "since": now - timedelta(minutes=h % 60),
                "sample_ts": now,
                "updated_at": now,
                "recent": [[now.timestamp() - 5 * k, 20.0 + k] for k in range(30)],
            }

    return {
        "incidents": _bulk(sessions, "incidents", incident_rows()),
        "playbook_runs": _bulk(sessions, "playbook_runs", run_rows()),
        "decisions": _bulk(sessions, "decisions", decision_rows()),
        "events": _bulk(sessions, "events", event_rows()),
        "approvals": _bulk(sessions, "approvals", approval_rows()),
        "host_states": _bulk(sessions, "host_states", host_rows()),
    }


def cases(incidents: int) -> list[tuple[str, str, bool]]:
    """(name, url, api?) to time; ``{id}`` rotates through incidents with runs."""
    deep = incidents // 100  # 99% of the way down the list
    return [
        ("page: incidents, first page", "/incidents", False),
        ("page: incidents, status+host", "/incidents?status=escalated&host=host-0042", False),
        ("page: incidents, kind=memory", "/incidents?kind=memory", False),
        ("page: incidents, from/to", "/incidents?from=2025-06-01&to=2025-06-02", False),
        ("page: incidents, q search", "/incidents?q=host-0042", False),
        ("page: incidents, deep keyset", f"/incidents?before={deep}", False),
        ("page: incident detail", "/incidents/{id}", False),
        ("page: dashboard", "/", False),
        ("page: dashboard hosts", "/dashboard/hosts", False),
        ("page: dashboard summary", "/dashboard/summary", False),
        ("api: incidents, first page", "/api/v1/incidents", True),
        ("api: incidents, status+host", "/api/v1/incidents?status=escalated&host=host-0042", True),
        (
            "api: incidents, since/until",
            "/api/v1/incidents?since=2025-06-01&until=2025-06-02",
            True,
        ),
        ("api: incidents, deep keyset", f"/api/v1/incidents?before={deep}", True),
        ("api: incidents, limit=500", "/api/v1/incidents?limit=500", True),
        ("api: incident detail", "/api/v1/incidents/{id}", True),
        ("api: runs", "/api/v1/runs", True),
        ("api: hosts, all 1,000", "/api/v1/hosts", True),
        ("api: hosts, all, recent=false", "/api/v1/hosts?recent=false", True),
        ("api: hosts, limit=100", "/api/v1/hosts?limit=100", True),
        ("api: hosts, HIGH_CPU", "/api/v1/hosts?status=HIGH_CPU", True),
        ("api: approvals", "/api/v1/approvals", True),
    ]


def _sign_in(app: Flask) -> tuple[FlaskClient, dict[str, str]]:
    sessions: sessionmaker[Session] = app.extensions["autosre"]
    create_user(sessions, "bench", PASSWORD, "viewer")
    token = create_token(sessions, "bench", "bench")
    client = app.test_client()
    page = client.get("/login").text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    if found is None:
        raise SystemExit("bench: no CSRF token on /login")
    data = {"name": "bench", "password": PASSWORD, "csrf_token": found.group(1)}
    if client.post("/login", data=data).status_code != 302:
        raise SystemExit("bench: cannot sign in")
    return client, {"Authorization": f"Bearer {token}"}


def measure(app: Flask, incidents: int, requests: int) -> dict[str, dict[str, Any]]:
    """Time every case; a case whose page answers 404 is reported as skipped."""
    client, headers = _sign_in(app)
    worked = list(range(10, incidents + 1, 10))
    results: dict[str, dict[str, Any]] = {}
    for name, url, api in cases(incidents):
        kwargs: dict[str, Any] = {"headers": headers} if api else {}
        first = client.get(url.format(id=worked[-1]), **kwargs)
        if first.status_code != 200:
            results[name] = {"skipped": f"HTTP {first.status_code}", "url": url}
            print(f"  {name:<40} skipped (HTTP {first.status_code})", flush=True)
            continue
        times = []
        for n in range(requests):
            target = url.format(id=worked[(n * 97) % len(worked)])
            start = time.perf_counter()
            response = client.get(target, **kwargs)
            times.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"bench: {target} answered {response.status_code}")
        times.sort()
        results[name] = {
            "url": url,
            "p50_ms": statistics.median(times),
            "p95_ms": times[max(0, round(0.95 * len(times)) - 1)],
            "max_ms": times[-1],
            "bytes": len(first.data),
        }
        row = results[name]
        flag = "" if row["p95_ms"] < TARGET_MS else "  SLOW"
        print(
            f"  {name:<40} p50 {row['p50_ms']:7.1f}  p95 {row['p95_ms']:7.1f}  "
            f"max {row['max_ms']:7.1f} ms{flag}",
            flush=True,
        )
    return results


def run_backend(url: str, data_dir: Path, incidents: int, requests: int) -> dict[str, Any]:
    """Migrate, seed and measure one database."""
    migrate_to_head(url)
    sessions = open_store(url)
    start = time.perf_counter()
    counts = seed(sessions, incidents)
    seeded_s = time.perf_counter() - start
    sessions.kw["bind"].dispose()
    print(f"  seeded {counts} in {seeded_s:.1f}s", flush=True)
    settings = load_settings({"AUTOSRE_DATA_DIR": str(data_dir), "AUTOSRE_DATABASE_URL": url})
    config = {"TESTING": True, "SECRET_KEY": secrets.token_urlsafe(48)}
    app = create_app(config, settings=settings)
    try:
        return {"rows": counts, "seed_s": seeded_s, "requests": measure(app, incidents, requests)}
    finally:
        app.extensions["autosre"].kw["bind"].dispose()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local server, dropped afterwards."""
    name = f"autosre_bench_{secrets.token_hex(6)}"
    with psycopg.connect(**PG, autocommit=True, connect_timeout=3) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with psycopg.connect(**PG, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def main() -> int:
    """Seed, measure, print; write bench/results/web.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "incidents": args.incidents,
        "requests_per_case": args.requests,
        "target_p95_ms": TARGET_MS,
    }
    with tempfile.TemporaryDirectory(prefix="autosre-bench-web-") as tmp:
        print("SQLite", flush=True)
        lite = Path(tmp) / "sqlite"
        url = f"sqlite:///{lite / 'autosre.db'}"
        lite.mkdir()
        report["sqlite"] = run_backend(url, lite, args.incidents, args.requests)
        if not args.skip_postgres:
            print("PostgreSQL", flush=True)
            with postgres_database() as pg_url:
                pg_dir = Path(tmp) / "postgresql"
                pg_dir.mkdir()
                report["postgresql"] = run_backend(pg_url, pg_dir, args.incidents, args.requests)
    slow = [
        f"{backend}: {name} (p95 {row['p95_ms']:.0f} ms)"
        for backend in ("sqlite", "postgresql")
        for name, row in report.get(backend, {}).get("requests", {}).items()
        if row.get("p95_ms", 0) >= TARGET_MS
    ]
    report["over_target"] = slow
    out = ROOT / "bench" / "results" / "web.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("over the p95 target: " + ("; ".join(slow) if slow else "none"))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
