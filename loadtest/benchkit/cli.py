"""The command line of ``loadtest/bench`` and the order of a run."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .contenders import CONTENDERS, CheckResult, Contender, RunContext, check_contender
from .procs import Process, free_port, http_get, wait_until
from .scenarios import PLANS, REPEATED_CONNECTIONS, Measurer, Plan
from .setup import (REPO_ROOT, SetupError, build_binaries, build_microbenchmark,
                    generate_tokens, install_missing, prebuilt_binaries)

ISSUER = "https://localhost:8443"
AUDIENCE = "orders"
# File descriptors the 1000-connection run needs: wrk's 1000, the proxy's 1000 downstream
# plus its upstream connections, with headroom.
FILE_LIMIT = 65_536


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loadtest/bench",
        description="Benchmark Portcullis against Envoy (jwt_authn) and HAProxy (jwt_verify) "
                    "on this machine, with the same upstream app and the same tokens.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="short runs, about two minutes in all")
    mode.add_argument("--smoke", action="store_true",
                      help="one-second runs without fixed_rate, for the test suite; exits "
                           "non-zero unless every request succeeded")

    parser.add_argument("--contenders", default="direct,portcullis,envoy,haproxy",
                        help="comma-separated subset of direct, portcullis, envoy, haproxy "
                             "(default: all)")
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256"],
                        help="signature algorithm of the tokens (default RS256; HAProxy 2.6 "
                             "has no EdDSA)")
    parser.add_argument("--unique-tokens", type=int,
                        help="distinct tokens for unique_tokens (default: 40,000 per second "
                             "of the run)")
    parser.add_argument("--rate", type=int,
                        help="requests per second of fixed_rate (default: half the slowest "
                             "contender's repeated_token rate, at most 20,000, 5000 with "
                             "--quick; with k6 at most 2000, 1000 with --quick)")
    parser.add_argument("--fixed-rate-tool", choices=["oha", "k6"], default="oha",
                        help="load generator of fixed_rate: oha (default), which costs a "
                             "few microseconds per request and counts latency from when each "
                             "request was due, or k6, whose own pauses on the shared load "
                             "core dominate the p99")

    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "loadtest" / "results",
                        help="where latest.json, latest.md and latest.svg go "
                             "(default: loadtest/results)")
    parser.add_argument("--proxy-cpu", type=int, default=0,
                        help="CPU every proxy is pinned to (default 0)")
    parser.add_argument("--load-cpu", type=int, default=1,
                        help="CPU of the load generator, and of the app unless --app-cpu "
                             "is given (default 1)")
    parser.add_argument("--app-cpu", type=int,
                        help="CPU of the app, so that on a machine with three or more cores "
                             "the app does not share a core with the load generator "
                             "(default: the load generator's CPU)")
    parser.add_argument("--nice", type=int, default=0,
                        help="nice value (-20 to 19) of the app, the proxies and the load "
                             "generators, also set for their autogroup; a negative value, "
                             "which needs root, gives them precedence over other work on a "
                             "shared machine (default 0)")

    parser.add_argument("--debug-build", action="store_true",
                        help="use debug binaries, which build faster but are slow; for smoke runs")
    parser.add_argument("--bin-dir", type=Path,
                        help="use portcullis, bench-tokens and bench-upstream from this folder "
                             "instead of building them")
    parser.add_argument("--no-install", action="store_true",
                        help="fail instead of installing missing tools with apt-get, pip or "
                             "cargo install")
    parser.add_argument("--no-microbenchmark", action="store_true",
                        help="skip verify_overhead, the benchmark of a cache miss against the "
                             "bare signature check, which cargo builds from the checkout even "
                             "with --bin-dir (smoke runs always skip it)")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the working folder (configs, logs, tokens) and print its path")

    args = parser.parse_args(argv)
    args.contender_names = [name.strip() for name in args.contenders.split(",") if name.strip()]
    unknown = [name for name in args.contender_names if name not in CONTENDERS]
    if unknown or not args.contender_names:
        parser.error(f"unknown contender {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(CONTENDERS)}")
    if args.proxy_cpu == args.load_cpu:
        parser.error("--proxy-cpu and --load-cpu must differ, so the proxy has a core of its own")
    if args.app_cpu is None:
        args.app_cpu = args.load_cpu
    elif args.app_cpu == args.proxy_cpu:
        parser.error("--app-cpu and --proxy-cpu must differ, so the proxy has a core of its own")
    args.mode = "full"
    if args.quick:
        args.mode = "quick"
    elif args.smoke:
        args.mode = "smoke"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = PLANS[args.mode]
    started = time.time()
    load_before = os.getloadavg()
    raise_file_limit()

    needed = ["wrk", "taskset"]
    if plan.fixed_rate:
        needed.append(args.fixed_rate_tool)
    needed += [CONTENDERS[name].program for name in args.contender_names
               if CONTENDERS[name].program]
    try:
        programs = install_missing(needed, allow_install=not args.no_install)
        binaries = (prebuilt_binaries(args.bin_dir) if args.bin_dir
                    else build_binaries(release=not args.debug_build))
        # Built before anything is measured, so that its compilation cannot disturb a run.
        args.microbenchmark = (None if args.mode == "smoke" or args.no_microbenchmark
                               else build_microbenchmark())
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    try:
        return run(args, plan, programs, binaries, work, started, load_before)
    finally:
        if args.keep_work:
            print(f"==> working folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT if hard == resource.RLIM_INFINITY else min(FILE_LIMIT, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


AUTOGROUP = Path("/proc/self/autogroup")


def set_priority(nice: int) -> int | None:
    """Give the runner, and every process it starts from now on, the nice value ``nice``.

    With the kernel's autogroup scheduling on, a nice value ranks processes only within their
    session's group, so the group's own nice value is set too: that one ranks the run against
    other sessions' work, such as builds in another terminal. The group outlives the run, so
    this returns its previous nice value for ``restore_autogroup``; None without autogroups.
    """
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if not AUTOGROUP.exists():
        return None
    # The file reads like "/autogroup-43 nice 0".
    previous = int(AUTOGROUP.read_text().split()[-1])
    AUTOGROUP.write_text(f"{nice}\n")
    return previous


def restore_autogroup(previous: int | None) -> None:
    if previous is not None:
        AUTOGROUP.write_text(f"{previous}\n")


def run(args, plan: Plan, programs, binaries, work: Path, started: float,
        load_before: tuple[float, float, float]) -> int:
    previous_autogroup = None
    if args.nice:
        # Set before signing the tokens, which is most of a short run's setup time.
        try:
            previous_autogroup = set_priority(args.nice)
        except OSError as err:
            print(f"error: cannot set nice value {args.nice} ({err}); negative values need "
                  "root", file=sys.stderr)
            return 2
    try:
        return measure(args, plan, programs, binaries, work, started, load_before)
    finally:
        restore_autogroup(previous_autogroup)


def measure(args, plan: Plan, programs, binaries, work: Path, started: float,
            load_before: tuple[float, float, float]) -> int:
    unique = args.unique_tokens or max(1000, int(plan.unique * plan.unique_tokens_per_second))
    try:
        tokens = generate_tokens(binaries, work / "tokens", args.alg, unique, ISSUER, AUDIENCE)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    upstream_port = free_port()
    upstream = Process("upstream", [str(binaries.bench_upstream), "--listen",
                                    f"127.0.0.1:{upstream_port}", "--jwks", str(tokens.jwks)],
                       args.app_cpu, work / "upstream.log")
    upstream.start()
    if not wait_until(lambda: http_get(upstream_port, "/.bench/requests").status == 200, 10):
        print(f"error: bench-upstream did not start:\n{upstream.log_tail()}", file=sys.stderr)
        upstream.stop()
        return 2

    context = RunContext(work=work, binaries=binaries, tokens=tokens,
                         upstream_port=upstream_port, proxy_cpu=args.proxy_cpu,
                         programs=programs)
    contenders: list[Contender] = []
    info: dict[str, dict] = {}
    try:
        for name in args.contender_names:
            contender = CONTENDERS[name](context)
            info[name] = start_and_check(contender, args.mode)
            if info[name]["status"] == "measured":
                contenders.append(contender)
        # Let each proxy settle after its checks before reading its idle memory.
        time.sleep(1.0 if args.mode != "smoke" else 0.2)
        for contender in contenders:
            if contender.process is not None:
                info[contender.name]["rss_idle_mb"] = round(contender.process.rss_mb(), 1)
        results = run_scenarios(args, plan, contenders, programs, tokens, work)
    finally:
        for contender in contenders:
            contender.stop()
        upstream.stop()

    verification = None
    if args.microbenchmark:
        verification = run_microbenchmark(args.microbenchmark, args.proxy_cpu)

    meta = report.describe_run(args, plan, programs, binaries, tokens, started, load_before)
    document = report.build(meta, info, results, verification)
    paths = report.write_outputs(document, args.results_dir)
    report.print_table(document)
    print(f"==> wrote {', '.join(str(path) for path in paths)}")
    return report.exit_status(document, strict=args.mode == "smoke")


def run_microbenchmark(executable: Path, cpu: int) -> dict | None:
    """Run verify_overhead on the proxies' core, which is idle once they have stopped, and
    return its figures, or None (with the reason printed) when it fails."""
    print("==> verify_overhead: a cache miss against the bare signature check", flush=True)
    argv = ["taskset", "-c", str(cpu), str(executable), "--bench", "--json"]
    try:
        finished = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"    failed: {err}", flush=True)
        return None
    if finished.returncode != 0:
        print(f"    failed with exit code {finished.returncode}: "
              f"{finished.stderr.strip()[-500:]}", flush=True)
        return None
    try:
        document = json.loads(finished.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as err:
        print(f"    failed: its output is not JSON ({err})", flush=True)
        return None
    if not isinstance(document, dict) or not isinstance(document.get("algorithms"), list):
        print("    failed: its output has no list of algorithms", flush=True)
        return None
    return document


def start_and_check(contender: Contender, mode: str) -> dict:
    """Measure start-to-ready (median of several starts), then check token handling.
    The contender is left running when it passed."""
    name = contender.name
    starts = {"smoke": 1, "quick": 3, "full": 5}[mode] if name != "direct" else 1
    timings = []
    try:
        for attempt in range(starts):
            if attempt:
                contender.stop()
            timings.append(contender.start())
    except RuntimeError as err:
        print(f"==> {name}: not measured: {err}", flush=True)
        contender.stop()
        return {"status": "failed_to_start", "failures": [str(err)]}

    try:
        check = check_contender(contender)
    except (OSError, http.client.HTTPException) as err:
        check = CheckResult(passed=False, failures=[f"the check request failed: {err}"])
    entry: dict = {"status": "measured" if check.passed else "failed_check",
                   "failures": check.failures}
    if name != "direct":
        entry["startup_ms"] = round(statistics.median(timings), 1)
        entry["startup_runs_ms"] = [round(value, 1) for value in timings]
    if check.passed:
        print(f"==> {name}: accepts the valid token, rejects forged, expired and missing ones"
              + (f"; ready in {entry['startup_ms']} ms" if "startup_ms" in entry else ""),
              flush=True)
    else:
        print(f"==> {name}: not measured, the token check failed: {'; '.join(check.failures)}",
              flush=True)
        contender.stop()
    return entry


def run_scenarios(args, plan: Plan, contenders: list[Contender], programs, tokens,
                  work: Path) -> dict[str, dict[str, dict]]:
    measurers = [Measurer(contender, programs, args.load_cpu, work) for contender in contenders]
    valid = {"TOKEN_FILE": str(tokens.file("valid"))}
    results: dict[str, dict[str, dict]] = {}

    def record(scenario: str, measure) -> None:
        results[scenario] = {}
        for measurer in measurers:
            name = measurer.contender.name
            print(f"==> {scenario}: {name}", flush=True)
            try:
                results[scenario][name] = measure(measurer)
            except Exception as err:  # A failed run is reported; the others go on.
                results[scenario][name] = {"error": str(err)}
                print(f"    failed: {err}", flush=True)

    if plan.warmup:
        for measurer in measurers:
            measurer.wrk("repeated_token.lua", REPEATED_CONNECTIONS, plan.warmup, valid)
    record("repeated_token", lambda m: m.wrk("repeated_token.lua", REPEATED_CONNECTIONS,
                                             plan.repeated, valid))
    record("unique_tokens", lambda m: m.wrk("unique_tokens.lua", REPEATED_CONNECTIONS,
                                            plan.unique,
                                            {"TOKEN_FILE": str(tokens.file("unique"))}))
    for count in plan.connection_counts:
        record(f"connections_{count}",
               lambda m, count=count: m.wrk("repeated_token.lua", count, plan.connections, valid))
    if plan.fixed_rate:
        rate = args.rate or choose_rate(results, plan, args.fixed_rate_tool)
        tool = args.fixed_rate_tool
        print(f"==> fixed_rate at {rate} requests per second ({tool})", flush=True)
        record("fixed_rate", lambda m: {**m.fixed_rate(tool, tokens, rate, plan.fixed_rate),
                                        "rate": rate})
    return results


def choose_rate(results: dict[str, dict[str, dict]], plan: Plan, tool: str = "oha") -> int:
    """Return half the slowest contender's repeated_token throughput, at most the plan's cap
    for ``tool``."""
    rates = [result.get("rps", 0) for result in results.get("repeated_token", {}).values()
             if result.get("rps")]
    cap = plan.max_k6_fixed_rate if tool == "k6" else plan.max_fixed_rate
    slowest = min(rates) if rates else cap * 2
    return max(100, min(cap, int(slowest / 2) // 100 * 100))

