"""The measured scenarios, each run for a fixed number of seconds against every contender in
turn, so background load on the machine spreads over all contenders alike.

- ``repeated_token``: one valid token on every request, 32 keep-alive connections.
- ``unique_tokens``: a different valid token on every request, 32 connections.
- ``connections_N``: the repeated token over N = 1, 10, 100 and 1000 connections.
- ``fixed_rate``: a constant arrival rate below every contender's maximum (oha, or k6 with
  ``--fixed-rate-tool k6``), so latency percentiles compare at equal load.

Each result contains rps, p50_ms, p99_ms and the request and error counts. For proxies it
adds the peak resident memory (rss_mb), the CPU seconds per 100k requests (cpu_s) and the
share of its core the proxy used (cpu_busy). A cpu_busy near 1.0 means the proxy, not the
load generator, was the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .contenders import REQUEST_PATH, Contender
from .loadgen import run_k6_fixed_rate, run_oha_fixed_rate, run_wrk
from .procs import PeakRssSampler
from .setup import TokenSet

CONNECTION_COUNTS = (1, 10, 100, 1000)
REPEATED_CONNECTIONS = 32


@dataclass
class Plan:
    """How long each scenario runs, in seconds, and which scenarios run at all."""

    repeated: float
    unique: float
    connections: float
    fixed_rate: float
    warmup: float
    connection_counts: tuple[int, ...] = CONNECTION_COUNTS
    # The highest fixed rate, so the load generator and the app keep up on their shared core
    # on a machine where every proxy is fast.
    max_fixed_rate: int = 20_000
    # The same with k6, which falls behind at 5000 requests per second on a 2-core machine
    # (k6 reports those requests as dropped).
    max_k6_fixed_rate: int = 2000
    # Distinct tokens generated per second of unique_tokens: above the 17,000 requests per
    # second the fastest proxy reached in unique_tokens on the machine in RESULTS.md.
    # RS256 signing costs about 1 ms of CPU per token, so this sets most of the setup time.
    unique_tokens_per_second: int = 40_000


PLANS = {
    "full": Plan(repeated=15, unique=10, connections=10, fixed_rate=15, warmup=2),
    "quick": Plan(repeated=3, unique=2, connections=2, fixed_rate=4, warmup=1,
                  max_fixed_rate=5000, max_k6_fixed_rate=1000),
    # A few seconds in the test suite: only checks that the runner works end to end.
    "smoke": Plan(repeated=1, unique=1, connections=1, fixed_rate=0, warmup=0,
                  connection_counts=(10,), unique_tokens_per_second=3000),
}


class Measurer:
    """Runs scenarios against one contender and records what the proxy process used."""

    def __init__(self, contender: Contender, programs: dict[str, str], load_cpu: int,
                 work: Path):
        self.contender = contender
        self.programs = programs
        self.load_cpu = load_cpu
        self.work = work

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.contender.port}{REQUEST_PATH}"

    def wrk(self, script: str, connections: int, seconds: float, env: dict[str, str]) -> dict:
        return self._measured(lambda: run_wrk(self.programs["wrk"], self.url, script,
                                              connections, seconds, self.load_cpu, env))

    def fixed_rate(self, tool: str, tokens: TokenSet, rate: int, seconds: float) -> dict:
        """Run the fixed rate with ``tool``, oha or k6, sending the first valid token of
        ``tokens`` on every request."""
        if tool == "oha":
            token = tokens.first("valid")
            return self._measured(lambda: run_oha_fixed_rate(
                self.programs["oha"], self.url, token, rate, seconds, self.load_cpu,
                REPEATED_CONNECTIONS))
        summary = self.work / f"k6-{self.contender.name}.json"
        summary.unlink(missing_ok=True)
        return self._measured(lambda: run_k6_fixed_rate(
            self.programs["k6"], self.url, tokens.file("valid"), rate, seconds, self.load_cpu,
            summary))

    def _measured(self, run) -> dict:
        process = self.contender.process
        if process is None:
            figures = run()
            return _summarise(figures, None, None, None)
        cpu_before = process.cpu_seconds()
        started = time.monotonic()
        with PeakRssSampler(process) as sampler:
            figures = run()
        wall = time.monotonic() - started
        cpu = process.cpu_seconds() - cpu_before
        return _summarise(figures, cpu, wall, sampler.peak_mb)


def _summarise(figures: dict, cpu: float | None, wall: float | None,
               rss_mb: float | None) -> dict:
    requests = int(figures.get("requests", 0))
    errors = sum(int(figures.get(name, 0)) for name in (
        "errors_connect", "errors_read", "errors_write", "errors_timeout", "non_2xx",
        "failed"))
    result = {
        "requests": requests,
        "errors": errors,
        "rps": round(float(figures.get("rps", 0.0)), 1),
        "p50_ms": _round(figures.get("p50_ms")),
        "p90_ms": _round(figures.get("p90_ms")),
        "p99_ms": _round(figures.get("p99_ms")),
        "max_ms": _round(figures.get("max_ms")),
    }
    for extra in ("reused", "dropped"):
        if extra in figures:
            result[extra] = int(figures[extra])
    if cpu is not None and wall:
        result["rss_mb"] = round(rss_mb, 1) if rss_mb else None
        result["cpu_s"] = round(cpu / requests * 100_000, 2) if requests else None
        result["cpu_busy"] = round(cpu / wall, 2)
    return result


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)
