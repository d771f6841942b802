"""The load generators: wrk for closed-loop runs (each connection sends its next request when a response arrives) and k6 for
open-loop runs at a fixed arrival rate. Both run pinned to the load CPU."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

LOADTEST_DIR = Path(__file__).resolve().parents[1]
WRK_DIR = LOADTEST_DIR / "wrk"
K6_DIR = LOADTEST_DIR / "k6"


class LoadError(Exception):
    """A load generator failed or printed no result."""


def run_wrk(wrk: str, url: str, script: str, connections: int, seconds: float, cpu: int,
            env: dict[str, str]) -> dict:
    """Run one wrk thread with ``connections`` keep-alive connections for ``seconds`` and
    return the figures of the script's BENCH_JSON line."""
    argv = ["taskset", "-c", str(cpu), wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s",
            "--timeout", "10s", "-s", str(WRK_DIR / script), url]
    environment = {**os.environ, "WRK_THREADS": "1", **env}
    result = subprocess.run(argv, capture_output=True, text=True, env=environment,
                            timeout=seconds + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise LoadError(f"wrk printed no result (exit code {result.returncode}):\n"
                    f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}")


def run_k6_fixed_rate(k6: str, url: str, token_file: Path, rate: int, seconds: float,
                      cpu: int, summary_path: Path) -> dict:
    """Send ``rate`` requests per second for ``seconds`` with k6's constant-arrival-rate
    executor and return requests, rps, p50_ms, p90_ms, p99_ms, max_ms, failed and dropped."""
    argv = ["taskset", "-c", str(cpu), k6, "run", "--quiet", "--no-usage-report",
            "--summary-trend-stats", "avg,med,p(90),p(99),max",
            str(K6_DIR / "fixed_rate.js")]
    environment = {**os.environ, "TARGET": url, "TOKEN_FILE": str(token_file),
                   "RATE": str(rate), "DURATION": f"{seconds:g}s",
                   "SUMMARY_FILE": str(summary_path), "K6_NO_COLOR": "1"}
    result = subprocess.run(argv, capture_output=True, text=True, env=environment,
                            timeout=seconds + 120)
    if not summary_path.exists():
        raise LoadError(f"k6 wrote no summary (exit code {result.returncode}):\n"
                        f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
    return json.loads(summary_path.read_text())
