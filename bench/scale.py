"""One engine at 1,000 and 10,000 hosts: start, tick, memory, and the web UI at that size.

As a new user runs it: the shipped policy (policies/default.yaml, 10 s ticks), an INI
inventory with one line per host (``web00001 ansible_host=10.0.0.1``), and a real
Prometheus (the Debian binary) scraping, with ``honor_labels: true``, a synthetic exporter
that serves the high_cpu query's series for every host (bench/synthetic_exporter.py). The
sustain window's history (8 minutes) is backfilled with promtool, so the first tick already
reads full windows. Per size, each store (a fresh SQLite file; a fresh PostgreSQL database
on 127.0.0.1:5432, dropped afterwards) gets its own engine process, started the way
``autosre run`` starts it, which reports:

- start: policy and inventory loaded, engine built (series map, sources, resume);
- ticks: the first, then the median / p95 of the next ones, wall and CPU (process time);
- RSS after the ticks (VmRSS) and its peak (VmHWM);
- the web UI on that store (Flask test client): /api/v1/hosts with and without samples,
  one 500-host page, and the dashboard (its first load reads the inventory).

Beside that, what Prometheus itself takes for the queries (bench/scale_prometheus.py).
Everything started is stopped by pid; the whole run is bounded (``--deadline``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.scale_prometheus import describe, query_costs
from bench.scale_recorded import recorded_policy, recording_rules
from bench.scale_replicas import run_replicas
from bench.synthetic_exporter import Fleet, SyntheticExporter, inventory_text
from engine.collector import CollectorSchedule
from engine.malloc_arenas import limit_arenas
from tests.fixtures.prometheus import PrometheusServer, free_port

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "default.yaml"
PROMTOOL = Path("/usr/bin/promtool")
SCRAPE = 15.0  # the shipped policy's step: Prometheus' usual scrape interval
HISTORY = 480.0  # seconds backfilled: sustain (5 m) + 3 steps + the rate window (1 m), and more
CHILD_TIMEOUT = 600.0  # beyond the ticks themselves (a long run measures memory)
SETTLE_TIMEOUT = 180.0  # replicas: to split the hosts between them


# -- the engine's process ------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _timed_get(client: Any, url: str, headers: dict[str, str], times: int) -> dict[str, Any]:
    """First request, then the median of ``times`` more (ms), and the body size."""
    spent: list[float] = []
    size = 0
    for _ in range(times + 1):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        spent.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"bench: {url} answered {response.status_code}: {response.text[:200]}")
        size = len(response.data)
    return {"first_ms": spent[0], "ms": statistics.median(spent[1:]), "bytes": size}


def _web(settings: Any, components: Any) -> dict[str, Any]:
    from bench.web import _sign_in
    from webui import create_app

    config = {"TESTING": True, "SECRET_KEY": secrets.token_urlsafe(48)}
    app = create_app(config, components=components)
    client, headers = _sign_in(app)
    return {
        "hosts": _timed_get(client, "/api/v1/hosts", headers, 2),
        "hosts_brief": _timed_get(client, "/api/v1/hosts?recent=false", headers, 2),
        "hosts_page": _timed_get(client, "/api/v1/hosts?limit=500", headers, 3),
        "dashboard": _timed_get(client, "/", {}, 3),
    }


def _timed_fetches(engine: Any) -> list[float]:
    """Time each tick's fetches, from the first asked to the last answer mapped (Prometheus
    computing and sending, the engine decoding); the running total (ms) is the list's one
    item."""
    spent = [0.0]
    fetch = engine.fetcher.fetch

    def timed(now: float) -> Any:
        started = time.perf_counter()
        pending = fetch(now)
        left, lock = [len(pending)], threading.Lock()

        def done(_: Any) -> None:
            with lock:
                left[0] -= 1
                if not left[0]:
                    spent[0] += (time.perf_counter() - started) * 1000

        for future in pending.values():
            future.add_done_callback(done)
        return pending

    engine.fetcher.fetch = timed
    return spent


def _cpu_ms(pid: int) -> float:
    """Another process's CPU time so far (user + system, ms); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _settle(engine: Any, args: argparse.Namespace, hosts: int) -> float:
    """With several replicas, tick until this one holds its share (seconds it took)."""
    started = time.monotonic()
    share = -(-hosts // args.replicas)
    while time.monotonic() - started < SETTLE_TIMEOUT:
        engine.tick()
        if 0 < len(engine.takeover.share.hosts()) <= share * 1.02:
            break
        time.sleep(args.interval or 10)
    barrier = Path(args.barrier)
    (barrier / f"{args.replica}.ready").touch()
    while len(list(barrier.glob("*.ready"))) < args.replicas:  # measure at the same time
        if time.monotonic() - started > SETTLE_TIMEOUT + 60:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def _ticks(
    engine: Any, args: argparse.Namespace, interval: float, fetched: list[float]
) -> dict[str, Any]:
    """Tick ``args.ticks`` times, ``interval`` apart: wall, CPU and fetch time per tick
    (ms), and Prometheus' CPU per tick."""
    walls: list[float] = []
    cpus: list[float] = []
    fetches: list[float] = []
    collected: list[float] = []  # full passes after ticks, as `autosre run`; the last one forced
    collector = CollectorSchedule()
    if not args.automatic_gc:
        collector.start()
    prometheus_cpu = _cpu_ms(args.prometheus_pid) if args.prometheus_pid else 0.0
    profile = cProfile.Profile() if args.profile else None
    next_at = time.monotonic()
    for n in range(args.ticks):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + interval
        cpu, wall, fetch = time.process_time(), time.perf_counter(), fetched[0]
        if profile is not None and n == args.ticks - 1:
            profile.enable()
        engine.tick()
        if profile is not None and n == args.ticks - 1:
            profile.disable()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
        fetches.append(fetched[0] - fetch)
        before = collector.spent
        if not args.automatic_gc:
            collector.after_tick()
        collected.append((collector.spent - before) * 1000)
    if not args.automatic_gc:  # what the full pass every FULL_EVERY seconds costs now
        collector.full_every = 0.0
        before = collector.spent
        collector.after_tick()
        collected.append((collector.spent - before) * 1000)
    collector.stop()
    if args.prometheus_pid:  # per tick, its scrapes of the exporter included
        prometheus_cpu = (_cpu_ms(args.prometheus_pid) - prometheus_cpu) / args.ticks
    if profile is not None:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
        Path(args.profile).write_text(text.getvalue())
    return {
        "ticks_ms": walls,
        "cpu_ms": cpus,
        "fetch_ms": fetches,
        "collector_ms": collected,
        "prometheus_cpu_ms": prometheus_cpu,
    }


def child(args: argparse.Namespace) -> int:
    """Start one engine on one store, tick, measure; print one JSON line."""
    from autosre.wiring import build_engine, load_components
    from engine.settings import load_settings
    from engine.store.migrate import migrate_to_head

    env = {
        "AUTOSRE_DATA_DIR": args.data_dir,
        "AUTOSRE_DATABASE_URL": args.store,
        "AUTOSRE_INVENTORY": args.inventory,
        "AUTOSRE_POLICY": args.policy or str(POLICY),
        "AUTOSRE_PROMETHEUS_URL": args.prometheus,
        "AUTOSRE_LOG_LEVEL": "WARNING",
    }
    if args.replica:
        env["AUTOSRE_REPLICA_ID"] = args.replica
    settings = load_settings(env)
    if not args.replica:  # replicas: the bench upgrades the database once, before them
        migrate_to_head(settings.database_url)  # `autosre db upgrade`
    if args.trace_memory:
        tracemalloc.start(1)
    limit_arenas()  # as `autosre run` does
    started = time.perf_counter()
    components = load_components(settings)
    engine = build_engine(components)
    start_s = time.perf_counter() - started
    for watch in engine.watches.values():
        if args.full and hasattr(watch.source, "incremental"):
            watch.source.incremental = False  # the whole window every tick, as before
        if args.steps and hasattr(watch.source, "newest_value"):
            watch.source.newest_value = False  # the newest steps every tick, as before
    fetched = _timed_fetches(engine)
    settled = _settle(engine, args, len(components.inventory.hosts)) if args.replica else 0.0
    result: dict[str, Any] = {"start_s": start_s, "settle_s": settled}
    result.update(_ticks(engine, args, args.interval or settings.interval, fetched))
    cpu_states = engine.watches["high_cpu"].evaluator.states
    normal = sum(state.status == "NORMAL" for state in cpu_states.values())
    result |= {
        "rss_mb": _status_kb("VmRSS") / 1024,
        "peak_mb": _status_kb("VmHWM") / 1024,
        "hosts": len(cpu_states),
        "active": len(engine.takeover.share.hosts()),
        "cpu_normal": normal,
    }
    if args.trace_memory:
        result["memory"] = _memory_top(tracemalloc.take_snapshot())
    if args.replica:
        _report_and_wait(result, Path(args.barrier), args.replica)
    else:
        result["web"] = _web(settings, components)
    engine.shutdown(cancel_runs=True, timeout=10)
    components.close()
    print(json.dumps(result), flush=True)
    return 0


def _memory_top(snapshot: tracemalloc.Snapshot) -> list[str]:
    """Where the memory held now was allocated: the 15 largest lines."""
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = [f"total {total / 1e6:.1f} MB traced"]
    lines += [f"{stat.size / 1e6:7.1f} MB {stat.count:8d} {stat.traceback}" for stat in stats[:15]]
    return lines


def _report_and_wait(result: dict[str, Any], barrier: Path, replica: str) -> None:
    """A replica's result, written while it still holds its share: the others are measuring
    too; it stops when the bench says so (bounded)."""
    (barrier / f"{replica}.json").write_text(json.dumps(result))
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not (barrier / "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


# -- the bench's own process: Prometheus, the exporter, the engines ----------------------------


def _prometheus(work: Path, exporter: SyntheticExporter, fleet: Fleet) -> PrometheusServer:
    """Backfill the history, start Prometheus scraping the exporter, wait for every series."""
    now = time.time()
    history = work / "history.om"
    fleet.write_history(history, now - HISTORY, now - 1.0, SCRAPE)
    (work / "tsdb").mkdir()
    subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(history),
            str(work / "tsdb"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    history.unlink()
    scrape = {
        "job_name": "node",
        "honor_labels": True,
        "static_configs": [{"targets": [exporter.address]}],
    }
    config = {
        "global": {"scrape_interval": f"{SCRAPE:g}s", "evaluation_interval": f"{SCRAPE:g}s"},
        "scrape_configs": [scrape],
    }
    (work / "prometheus.yml").write_text(json.dumps(config))
    server = PrometheusServer(workdir=work, port=free_port())
    server.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        up = server.query('up{job="node"}')
        if up and exporter.scrapes and len(server.query("node_cpu_seconds_total")) == fleet.hosts:
            return server
        time.sleep(0.5)
    server.stop()
    raise SystemExit(f"bench: Prometheus did not hold {fleet.hosts} series within 60 s")


def _run_child(argv: list[str], log: Path, ticking: float) -> dict[str, Any]:
    limit = CHILD_TIMEOUT + ticking
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.scale", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            out, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise SystemExit(f"bench: engine process over {limit:g}s; see {log}") from None
        except BaseException:  # the bench stopped (a signal, Ctrl-C): its engine goes too
            proc.kill()
            proc.wait(timeout=10)
            raise
    if proc.returncode != 0:
        raise SystemExit(f"bench: engine process failed: {log.read_text()[-3000:]}")
    found: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return found


def _child_argv(args: argparse.Namespace, **options: object) -> list[str]:
    argv = ["--child", f"--ticks={args.ticks}", f"--interval={args.interval}"]
    return argv + [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]


def _size(size: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    from bench.web import postgres_database

    work = base / f"n{size}"
    work.mkdir()
    fleet = Fleet(size)
    inventory = work / "hosts.ini"
    inventory.write_text(inventory_text(size))
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        exporter = SyntheticExporter(fleet).start()
        stack.callback(exporter.stop)
        server = _prometheus(work, exporter, fleet)
        stack.callback(server.stop)
        assert server.proc is not None
        common = {
            "inventory": inventory,
            "prometheus": server.url,
            "prometheus_pid": server.proc.pid,
        }
        results["prometheus"] = query_costs(server.url, POLICY, ROOT / "playbooks")
        stores = ["sqlite"] if args.skip_postgres else ["sqlite", "postgresql"]
        for store in stores:
            for mode in args.modes:
                data = work / f"{store}-{mode}"
                data.mkdir()
                with ExitStack() as db:
                    url = (
                        f"sqlite:///{data / 'autosre.db'}"
                        if store == "sqlite"
                        else db.enter_context(postgres_database())
                    )
                    argv = _child_argv(args, store=url, data_dir=data, **common)
                    if mode == "full":
                        argv.append("--full")
                    if mode == "automatic-gc":
                        argv.append("--automatic-gc")
                    if mode == "steps":
                        argv.append("--steps")
                    if mode == "recorded":
                        db.enter_context(recording_rules(server, size))
                        argv.append(f"--policy={recorded_policy(POLICY, work / 'recorded.yaml')}")
                    if args.trace_memory:
                        argv.append("--trace-memory")
                    if args.profile and size == max(args.sizes) and store == "sqlite":
                        argv.append(f"--profile={args.profile}.{mode}")
                    print(f"{size} hosts, {store}, {mode}: engine", file=sys.stderr, flush=True)
                    ticking = args.ticks * (args.interval or 10)
                    log = work / f"{store}-{mode}.log"
                    results[f"{store}/{mode}"] = _run_child(argv, log, ticking)
        if args.replicas > 1 and size == max(args.sizes) and not args.skip_postgres:
            print(f"{size} hosts: {args.replicas} replicas", file=sys.stderr, flush=True)
            with postgres_database() as url:
                argv = _child_argv(args, store=url, **common)
                results["replicas"] = run_replicas(argv, args.replicas, work / "replicas")
    return results


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def _row(size: int, case: str, found: dict[str, Any]) -> str:
    ticks, cpus, fetches = found["ticks_ms"], found["cpu_ms"], found["fetch_ms"]
    steady, steady_cpu, steady_fetch = ticks[1:] or ticks, cpus[1:] or cpus, fetches[1:] or fetches
    web = found.get("web")

    def api(name: str) -> str:
        if web is None:
            return "-"
        return f"{web[name]['ms']:.0f} ms ({web[name]['bytes'] / 1e6:.2f} MB)"

    dashboard = f"{web['dashboard']['ms']:.0f} ms" if web else "-"
    return (
        f"| {size:,} | {case} | {found['active']:,} | {found['start_s']:.1f} s | {ticks[0]:.0f} ms"
        f" | {statistics.median(steady):.0f} / {_p95(steady):.0f} ms"
        f" | {statistics.median(steady_cpu):.0f} ms | {statistics.median(steady_fetch):.0f} ms"
        f" | {found['collector_ms'][-1]:.0f} ms"
        f" | {found['prometheus_cpu_ms']:.0f} ms"
        f" | {found['rss_mb']:.0f} MB ({found['peak_mb']:.0f} peak)"
        f" | {api('hosts')} | {api('hosts_page')} | {dashboard} |"
    )


def _print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    """The table: one row per size and case (replicas one row each), then notes."""
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python"
        f" {platform.python_version()}; policy {POLICY.name}; {args.ticks} ticks every"
        f" {args.interval or 10:g} s; Prometheus scraping every {SCRAPE:g} s"
    )
    print(
        "| hosts | store / reading | hosts held | engine start | first tick | tick median / p95"
        " | CPU per tick | fetch per tick | full collection between ticks (every 5 min)"
        " | Prometheus CPU per tick | RSS | /api/v1/hosts | ?limit=500 | dashboard |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for case, found in report[str(size)].items():
            if case == "replicas" and "error" in found:
                print(f"| {size:,} | {args.replicas} replicas: {found['error']} |")
            elif case == "replicas":
                for replica, one in sorted(found.items()):
                    print(_row(size, f"postgresql/incremental, replica {replica}", one))
            elif case != "prometheus":
                print(_row(size, case, found))
    for size in args.sizes:
        for case, found in report[str(size)].items():
            if case not in ("prometheus", "replicas") and found["cpu_normal"] != size:
                print(f"  note: {size} hosts, {case}: {found['cpu_normal']} read as normal CPU")
            if case not in ("prometheus", "replicas") and "memory" in found:
                print(f"  memory, {size} hosts, {case}:", *found["memory"], sep="\n    ")
    print("\nPrometheus alone (median of 3):")
    for size in args.sizes:
        print(describe(size, report[str(size)]["prometheus"]))


def _stopped(number: int, _frame: object) -> None:
    raise SystemExit(f"bench: stopped by {signal.Signals(number).name}")


def main(argv: list[str] | None = None) -> int:
    """Parse the options; run the bench (or, with --child, one engine)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1000, 10000]
    )
    parser.add_argument("--ticks", type=int, default=6, help="ticks per engine (the first apart)")
    parser.add_argument("--interval", type=float, default=0.0, help="0: the shipped 10 s")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--modes",
        type=lambda t: t.split(","),
        default=["steps", "incremental", "recorded"],
        help="incremental: the default (a usual tick asks for each host's newest value);"
        " steps: every tick asks for the newest steps (as before); automatic-gc: the"
        " default with the garbage collector's full passes left automatic; full: every"
        " tick asks for whole windows; recorded: Prometheus evaluates the shipped"
        " recording rules and the policy reads the records (docs/prometheus.md)",
    )
    parser.add_argument(
        "--replicas", type=int, default=2, help="engines splitting the largest fleet (PostgreSQL)"
    )
    parser.add_argument("--trace-memory", action="store_true", help="tracemalloc's top lines")
    parser.add_argument("--profile", help="write a cProfile of the largest size's last tick here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--automatic-gc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prometheus-pid", type=int, default=0, help=argparse.SUPPRESS)
    for name in ("store", "data-dir", "inventory", "prometheus", "replica", "barrier", "policy"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not PROMTOOL.exists():
        raise SystemExit(f"bench: {PROMTOOL} is missing (apt-get install prometheus)")
    # Stopped from outside (kill, a CI job's end): unwind, so that what this run started
    # (Prometheus, the exporter, engines, databases) is stopped by the cleanups below.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _stopped)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="autosre-bench-scale-") as tmp:
        for size in args.sizes:
            report[str(size)] = _size(size, args, Path(tmp))
    _print_report(report, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
