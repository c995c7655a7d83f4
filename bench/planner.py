"""Planner overhead: decision latency with the Gemini planner (real google-genai client,
fake server on 127.0.0.1) answering at once and after 2 s; a tick's duration while the
model is slow; and the MTTR of the CPU scenario with the gemini planner vs the rules one.

Run: make bench (or: .venv/bin/python -m bench.planner [--skip-mttr]).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mttr import run_trials
from engine.plan.gemini import GeminiTransport
from engine.plan.llm import LLMPlanner
from engine.plan.rules import RulesPlanner
from engine.plan.situation import Situation
from engine.types import HostHistory, HostState, HostStatus, Sample
from tests.engine.test_loop import Lab
from tests.fixtures.fake_llm import FakeGemini, Reply, serving
from tests.integration.harness import ROOT

ANSWER = json.dumps({"action": "restart_nginx", "confidence": 0.95, "rationale": "cpu pegged"})
ACTIONS = {"restart_nginx": "restart nginx", "rollback_nginx": "restore known-good config"}


def _situation(incident_id: int) -> Situation:
    now = time.time()
    return Situation(
        host="web1",
        state=HostState("web1", HostStatus.HIGH_CPU, 97.0, now - 12, "cpu 97%", now),
        incident_id=incident_id,  # a new decision point each time: no cache hits
        tried=(),
        history=HostHistory("web1"),
        fleet={HostStatus.HIGH_CPU: 1, HostStatus.NORMAL: 999},
        actions=ACTIONS,
        ladder=("restart_nginx", "rollback_nginx"),
        now=now,
        samples=tuple(Sample("web1", now - i, 97.0) for i in range(30, -1, -1)),
        labels={"role": "frontend"},
    )


def decision_latency(fake: FakeGemini, *, delay: float, count: int) -> dict[str, float]:
    """Wall time of propose() and the engine's own share (everything but the HTTP call)."""
    fake.script(Reply(ANSWER, delay=delay))
    transport = GeminiTransport(model=fake.model, api_key=fake.api_key, base_url=fake.url)
    planner = LLMPlanner(
        transport=transport,
        fallback=RulesPlanner(),
        timeout=delay + 5,
        thresholds={"high_cpu": {"trigger": 80.0, "clear": 50.0, "sustain_seconds": 10.0}},
    )
    planner.propose(_situation(0))  # warm the connection pool, as a running engine would
    walls, own = [], []
    for number in range(1, count + 1):
        started = time.perf_counter()
        proposal = planner.propose(_situation(number))
        wall = time.perf_counter() - started
        assert proposal.planner == "gemini" and proposal.call is not None
        walls.append(wall)
        own.append(wall - proposal.call.latency)
    transport.close()
    return {
        "delay_s": delay,
        "calls": count,
        "wall_median_ms": statistics.median(walls) * 1000,
        "wall_p95_ms": sorted(walls)[int(0.95 * (count - 1))] * 1000,
        "engine_own_median_ms": statistics.median(own) * 1000,
        "engine_own_max_ms": max(own) * 1000,
        "in_transport_median_ms": statistics.median(w - o for w, o in zip(walls, own, strict=True))
        * 1000,
    }


def tick_with_slow_model(fake: FakeGemini, delay: float) -> dict[str, float]:
    """Tick durations while one host waits on a model that takes ``delay`` seconds."""
    fake.script(Reply(ANSWER, delay=delay))
    transport = GeminiTransport(model=fake.model, api_key=fake.api_key, base_url=fake.url)
    planner = LLMPlanner(
        transport=transport, fallback=RulesPlanner(), timeout=delay + 5, thresholds={}
    )
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(Path(tmp))
        engine = lab.engine(planner)
        lab.values["web1"] = 95.0
        durations = []
        for _ in range(int(delay / 0.25) + 4):
            durations.append(engine.tick().duration)
            time.sleep(0.25)
        engine.shutdown()
    transport.close()
    return {
        "model_delay_s": delay,
        "tick_max_ms": max(durations) * 1000,
        "tick_median_ms": statistics.median(durations) * 1000,
    }


def main() -> int:
    """Measure and print; write bench/results/planner.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--skip-mttr", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    }
    with serving(FakeGemini()) as fake:
        report["at_once"] = decision_latency(fake, delay=0.0, count=args.calls)
        report["after_2s"] = decision_latency(fake, delay=2.0, count=max(3, args.calls // 10))
        report["tick_slow_model"] = tick_with_slow_model(fake, 2.0)
        for key in ("at_once", "after_2s", "tick_slow_model"):
            print(key, json.dumps(report[key]), flush=True)
        if not args.skip_mttr:
            fake.script(Reply(ANSWER))
            gemini_env = {
                "AUTOSRE_PLANNER": "gemini",
                "AUTOSRE_LLM_MODEL": fake.model,
                "AUTOSRE_LLM_BASE_URL": fake.url,
                "GEMINI_API_KEY": fake.api_key,
            }
            # Rules and gemini trials alternate in one run, so machine noise hits both alike.
            rules, gemini = run_trials(args.trials, envs=[{}, gemini_env])
            report["mttr_rules_s"] = statistics.median(r["verified"] for r in rules)
            report["mttr_gemini_s"] = statistics.median(r["verified"] for r in gemini)
            report["mttr_ratio"] = report["mttr_gemini_s"] / report["mttr_rules_s"]
            print(
                f"MTTR median: rules {report['mttr_rules_s']:.1f}s, gemini "
                f"{report['mttr_gemini_s']:.1f}s, ratio {report['mttr_ratio']:.2f}"
            )
    out = ROOT / "bench" / "results" / "planner.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(
        f"engine's own time per model call: median "
        f"{report['at_once']['engine_own_median_ms']:.1f} ms (target < 50 ms); "
        f"tick with a 2 s model: max {report['tick_slow_model']['tick_max_ms']:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
