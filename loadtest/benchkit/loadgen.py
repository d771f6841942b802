"""The load generators: wrk for closed-loop runs (each connection sends its next request when
a response arrives), and oha or k6 for open-loop runs at a fixed arrival rate. All run pinned
to the load CPU.

oha is the default for the fixed rate. It is a compiled program that costs a few
microseconds per request, and it measures each request from the moment it was due, so a
late start counts against the target. k6 runs a JavaScript virtual machine per user. On a
2-core machine it shares the load core with the app, and its own pauses put the p99 of
`direct` near 2 ms against a median of 0.1 ms. That hides what a proxy adds."""

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


def run_oha_fixed_rate(oha: str, url: str, token: str, rate: int, seconds: float, cpu: int,
                       connections: int) -> dict:
    """Send ``rate`` requests per second for ``seconds`` over up to ``connections`` keep-alive
    connections with oha and return requests, rps, p50_ms, p90_ms, p99_ms, max_ms, failed
    and dropped.

    Latency is counted from when each request was due (``--latency-correction``), and the
    requests still in flight at the end are awaited (``-w``) rather than counted as failed.
    """
    argv = ["taskset", "-c", str(cpu), oha, "-z", f"{seconds:g}s", "-q", str(rate),
            "-c", str(connections), "--latency-correction", "-w", "--no-tui",
            "--output-format", "json", "-H", f"Authorization: Bearer {token}", url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise LoadError(f"oha printed no JSON report (exit code {result.returncode}):\n"
                        f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}") from None
    return oha_figures(report, rate, seconds)


def oha_figures(report: dict, rate: int, seconds: float) -> dict:
    """Return the runner's figures from oha's JSON report.

    ``dropped`` counts the requests the rate called for that were never sent, which means
    the load generator, not the target, fell behind. A shortfall of up to 0.1% is not
    counted: oha stops at the deadline, which cuts off the last few requests of any run.
    """
    statuses = {int(code): count for code, count in report["statusCodeDistribution"].items()}
    errors = sum(report.get("errorDistribution", {}).values())
    answered = sum(statuses.values())
    percentiles = report["latencyPercentiles"]
    expected = round(rate * seconds)
    shortfall = max(0, expected - answered - errors)

    def milliseconds(seconds_value):
        return None if seconds_value is None else seconds_value * 1000

    return {
        "requests": answered + errors,
        "rps": report["summary"]["requestsPerSec"],
        "p50_ms": milliseconds(percentiles.get("p50")),
        "p90_ms": milliseconds(percentiles.get("p90")),
        "p99_ms": milliseconds(percentiles.get("p99")),
        "max_ms": milliseconds(report["summary"].get("slowest")),
        "failed": errors + sum(count for code, count in statuses.items()
                               if not 200 <= code < 300),
        "dropped": shortfall if shortfall > expected // 1000 else 0,
    }


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
