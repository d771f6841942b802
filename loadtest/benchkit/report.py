"""The results of a run: ``latest.json``, the Markdown report, the terminal table, the
ratios of each proxy to Envoy and HAProxy, and the performance targets met or missed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import chart

PROXIES = ("portcullis", "envoy", "haproxy")
REFERENCES = ("envoy", "haproxy")
TABLE_FIELDS = (("rps", "rps", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"),
                ("p99_ms", "p99 ms", "{:.2f}"), ("rss_mb", "RSS MiB", "{:.1f}"),
                ("cpu_s", "CPU s/100k", "{:.2f}"), ("cpu_busy", "core used", "{:.0%}"))


def describe_run(args, plan, programs, binaries, tokens, started: float,
                 load_before) -> dict:
    versions = {"portcullis": version_of([str(binaries.portcullis), "--version"]),
                "wrk": version_of([programs["wrk"], "-v"])}
    for name, argv in (("envoy", ["--version"]), ("haproxy", ["-v"]), ("k6", ["version"]),
                       ("oha", ["--version"])):
        if name in programs:
            versions[name] = version_of([programs[name], *argv])
    return {
        "command": "loadtest/bench " + " ".join(sys.argv[1:]),
        "commit": repository_commit(),
        "mode": args.mode,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "machine": machine(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "proxy_cpu": args.proxy_cpu,
        "load_cpu": args.load_cpu,
        "app_cpu": args.app_cpu,
        "build": "debug" if args.debug_build else "deploy (fat LTO)",
        "nice": args.nice,
        "fixed_rate_tool": args.fixed_rate_tool,
        "algorithm": tokens.algorithm,
        "unique_tokens": tokens.unique_count,
        "seconds": {"repeated_token": plan.repeated, "unique_tokens": plan.unique,
                    "connections": plan.connections, "fixed_rate": plan.fixed_rate},
        "versions": versions,
    }


def version_of(argv: list[str]) -> str:
    """Return the first line a program prints for its version option."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def repository_commit() -> str:
    """Return the checked-out commit, with `-dirty` when the work tree has changes."""
    from .setup import REPO_ROOT

    return version_of(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"])


def machine() -> dict:
    model = "unknown"
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gib": memory_gib,
            "kernel": platform.release()}


def build(meta: dict, contenders: dict[str, dict], scenarios: dict[str, dict],
          verification: dict | None = None) -> dict:
    """Assemble the run's document. ``verification`` is what ``verify_overhead --json``
    printed, or None when it did not run."""
    document = {"meta": meta, "contenders": contenders, "scenarios": scenarios}
    if verification is not None:
        document["verification"] = verification
    document["ratios"] = ratios(contenders, scenarios)
    document["targets"] = targets(contenders, scenarios, verification)
    return document


def ratios(contenders: dict, scenarios: dict) -> dict:
    """Divide each proxy's figures by Envoy's and HAProxy's, per scenario. A ratio above 1 is
    better for rps and worse for p99_ms, rss_mb and cpu_s."""
    table: dict = {}
    for proxy in PROXIES:
        for reference in REFERENCES:
            if proxy == reference:
                continue
            per_scenario = {}
            for scenario, results in scenarios.items():
                mine, theirs = results.get(proxy, {}), results.get(reference, {})
                entry = {}
                for field in ("rps", "p50_ms", "p99_ms", "rss_mb", "cpu_s"):
                    if mine.get(field) and theirs.get(field):
                        entry[field] = round(mine[field] / theirs[field], 2)
                if entry:
                    per_scenario[scenario] = entry
            idle_mine = contenders.get(proxy, {}).get("rss_idle_mb")
            idle_theirs = contenders.get(reference, {}).get("rss_idle_mb")
            if idle_mine and idle_theirs:
                per_scenario["rss_idle_mb"] = round(idle_mine / idle_theirs, 2)
            if per_scenario:
                table.setdefault(proxy, {})[f"vs_{reference}"] = per_scenario
    return table


def targets(contenders: dict, scenarios: dict, verification: dict | None = None) -> list[dict]:
    """List Portcullis's performance targets, each with the measured figure and whether it is
    met (None when a figure it needs was not measured)."""
    def figure(scenario, contender, field):
        return scenarios.get(scenario, {}).get(contender, {}).get(field)

    def ratio_target(scenario, reference, minimum):
        mine, theirs = figure(scenario, "portcullis", "rps"), figure(scenario, reference, "rps")
        value = mine / theirs if mine and theirs else None
        measured = None if value is None else f"{value:.2f} x"
        # Throughput follows the share of the core each proxy got, which other work on the
        # machine changes from run to run. CPU time per request does not depend on it.
        my_cpu, their_cpu = (figure(scenario, "portcullis", "cpu_s"),
                             figure(scenario, reference, "cpu_s"))
        if measured and my_cpu and their_cpu:
            measured += f" (CPU per request {their_cpu / my_cpu:.2f} x lower)"
        return {"target": f"{scenario} rps >= {minimum} x {reference}",
                "measured": measured,
                "met": None if value is None else value >= minimum}

    found = [ratio_target("repeated_token", "envoy", 2.0),
             ratio_target("repeated_token", "haproxy", 1.5),
             ratio_target("unique_tokens", "envoy", 2.0),
             ratio_target("unique_tokens", "haproxy", 1.2)]

    direct = figure("fixed_rate", "direct", "p99_ms")
    mine, envoy = figure("fixed_rate", "portcullis", "p99_ms"), figure("fixed_rate", "envoy", "p99_ms")
    met = None
    measured = None
    if None not in (direct, mine, envoy):
        added_mine, added_envoy = mine - direct, envoy - direct
        measured = f"{added_mine:.3f} ms added vs Envoy's {added_envoy:.3f} ms"
        met = added_mine <= added_envoy / 2
    found.append({"target": "fixed_rate p99 added over direct <= 1/2 of Envoy's",
                  "measured": measured, "met": met})

    idle = contenders.get("portcullis", {}).get("rss_idle_mb")
    found.append({"target": "idle RSS <= 10 MiB",
                  "measured": None if idle is None else f"{idle:.1f} MiB",
                  "met": None if idle is None else idle <= 10})
    loaded_mine = figure("connections_1000", "portcullis", "rss_mb")
    loaded_envoy = figure("connections_1000", "envoy", "rss_mb")
    found.append({"target": "RSS under 1000 connections <= 1/4 of Envoy's",
                  "measured": None if None in (loaded_mine, loaded_envoy)
                  else f"{loaded_mine:.1f} vs {loaded_envoy:.1f} MiB",
                  "met": None if None in (loaded_mine, loaded_envoy)
                  else loaded_mine <= loaded_envoy / 4})
    startup = contenders.get("portcullis", {}).get("startup_ms")
    found.append({"target": "ready <= 100 ms after start, JWKS server up",
                  "measured": None if startup is None else f"{startup:.1f} ms",
                  "met": None if startup is None else startup <= 100})
    found += miss_targets(verification)
    return found


def miss_targets(verification: dict | None) -> list[dict]:
    """List one target per algorithm: every kind of cache miss (cache off, cache full, cache
    with room, which keeps the token) costs at most 10% more than the bare signature check,
    by the medians of verify_overhead's rounds."""
    if not verification or not verification.get("algorithms"):
        return [{"target": "cache miss <= 1.1 x the bare signature check", "measured": None,
                 "met": None}]
    found = []
    for entry in verification["algorithms"]:
        medians = {label: entry[field]["median"] for field, label in MISS_KINDS
                   if field in entry}
        found.append({
            "target": f"cache miss <= 1.1 x the bare signature check ({entry['algorithm']})",
            "measured": ", ".join(f"{value:+.1f}% {label}" for label, value in medians.items()),
            "met": max(medians.values()) <= 10,
        })
    return found


# The kinds of miss verify_overhead times, as its JSON names them and as reports call them.
# Reports written before the cache-filling miss existed lack its field.
MISS_KINDS = (("miss_cached_over_bare_pct", "with a full cache"),
              ("miss_inserted_over_bare_pct", "filling the cache"),
              ("miss_over_bare_pct", "without the cache"))


def verification_rows(document: dict) -> list[list[str]]:
    """Build one row per algorithm of verify_overhead: times in microseconds, then each
    miss over the bare check as its median and the middle 80% of rounds."""
    def spread(percent: dict | None) -> str:
        if percent is None:
            return "-"
        return f"{percent['median']:+.1f}% ({percent['p10']:+.1f}% to {percent['p90']:+.1f}%)"

    def micros(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return [[entry["algorithm"], micros(entry.get("bare_us")), micros(entry.get("miss_us")),
             micros(entry.get("miss_cached_us")), micros(entry.get("miss_inserted_us")),
             spread(entry.get("miss_over_bare_pct")),
             spread(entry.get("miss_cached_over_bare_pct")),
             spread(entry.get("miss_inserted_over_bare_pct"))]
            for entry in document.get("verification", {}).get("algorithms", [])]


VERIFICATION_HEADER = ["algorithm", "bare check us", "miss us", "miss cached us",
                       "miss inserted us", "miss over bare", "cached miss over bare",
                       "inserted miss over bare"]


def write_outputs(document: dict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        "latest.json": json.dumps(document, indent=2) + "\n",
        "latest.md": markdown(document),
        "latest.svg": chart.render(document),
    }
    paths = []
    for name, text in outputs.items():
        path = folder / name
        temporary = folder / f".{name}.tmp"
        temporary.write_text(text)
        temporary.replace(path)
        paths.append(path)
    return paths


def _cell(result: dict | None, field: str, form: str) -> str:
    if not result:
        return "-"
    if "error" in result:
        return "failed"
    value = result.get(field)
    return "-" if value is None else form.format(value)


def result_rows(document: dict) -> list[list[str]]:
    """Build one table row per scenario and contender: the names, the figures, the errors."""
    rows = []
    for scenario, results in document["scenarios"].items():
        for contender, result in results.items():
            errors = result.get("errors", 0) if "error" not in result else result["error"][:40]
            note = f"{errors}" if errors else ""
            # `direct` verifies nothing, so a reused token changes nothing there.
            if result.get("reused") and contender != "direct":
                note += f" reused {result['reused']}"
            if result.get("dropped"):
                note += f" dropped {result['dropped']}"
            rows.append([scenario, contender,
                         *[_cell(result, field, form) for field, _, form in TABLE_FIELDS],
                         note.strip()])
    return rows


def print_table(document: dict) -> None:
    header = ["scenario", "contender", *[label for _, label, _ in TABLE_FIELDS], "errors"]
    rows = [header, *result_rows(document)]
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]
    print()
    for position, row in enumerate(rows):
        print("  ".join(cell.ljust(width) if index < 2 else cell.rjust(width)
                        for index, (cell, width) in enumerate(zip(row, widths))))
        if position == 0:
            print("  ".join("-" * width for width in widths))
    print()
    for name, entry in document["contenders"].items():
        facts = [entry["status"]]
        if entry.get("startup_ms") is not None:
            facts.append(f"ready in {entry['startup_ms']} ms")
        if entry.get("rss_idle_mb") is not None:
            facts.append(f"idle RSS {entry['rss_idle_mb']} MiB")
        facts += entry.get("failures", [])
        print(f"{name}: {'; '.join(facts)}")
    rows = verification_rows(document)
    if rows:
        print("\nverify_overhead (middle 80% of rounds in brackets):")
        table = [VERIFICATION_HEADER, *rows]
        widths = [max(len(row[index]) for row in table) for index in range(len(table[0]))]
        for row in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        print()
    if document["meta"]["mode"] == "smoke":
        # One-second runs of a debug build cannot show whether a target is met.
        print("targets: not judged in a smoke run")
        return
    for target in document["targets"]:
        state = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        print(f"target {target['target']}: {state} ({target['measured'] or '-'})")


def markdown(document: dict) -> str:
    meta = document["meta"]
    machine = meta["machine"]
    lines = [
        "# Benchmark run",
        "",
        f"`{meta['command']}` ({meta['mode']} mode, {meta['build']} build) at commit "
        f"{meta['commit']}, started {meta['started_at']}, took {meta['elapsed_s']} s.",
        "",
        f"Machine: {machine['cores']} cores, {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB RAM, Linux {machine['kernel']}. Load average "
        f"before {format_load(meta['load_average_before'])}, after "
        f"{format_load(meta['load_average_after'])}. Proxies pinned to CPU "
        f"{meta['proxy_cpu']}; {pinning(meta)}; nice value {meta.get('nice', 0)}.",
        "",
        f"Tokens: {meta['algorithm']}, {meta['unique_tokens']} distinct tokens for "
        f"unique_tokens. fixed_rate load generator: {meta.get('fixed_rate_tool', 'k6')}. "
        f"Versions: "
        + "; ".join(f"{name} `{version}`" for name, version in meta["versions"].items()) + ".",
        "",
        "| scenario | contender | " + " | ".join(label for _, label, _ in TABLE_FIELDS)
        + " | errors |",
        "| --- | --- | " + " | ".join("---:" for _ in TABLE_FIELDS) + " | ---: |",
    ]
    for row in result_rows(document):
        lines.append("| " + " | ".join(cell or "0" if index == len(row) - 1 else cell
                                        for index, cell in enumerate(row)) + " |")
    lines += ["", "| contender | status | ready ms | idle RSS MiB | notes |",
              "| --- | --- | ---: | ---: | --- |"]
    for name, entry in document["contenders"].items():
        lines.append(f"| {name} | {entry['status']} | {entry.get('startup_ms', '-')} | "
                     f"{entry.get('rss_idle_mb', '-')} | {'; '.join(entry.get('failures', []))} |")
    rows = verification_rows(document)
    if rows:
        verification = document["verification"]
        lines += ["", f"Cache miss against the bare signature check (`verify_overhead`, "
                  f"{verification['rounds']} rounds of {verification['batch']} operations "
                  "each; in brackets the middle 80% of rounds):", "",
                  "| " + " | ".join(VERIFICATION_HEADER) + " |",
                  "| --- | " + " | ".join("---:" for _ in VERIFICATION_HEADER[1:]) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "| target | measured | result |", "| --- | --- | --- |"]
    for target in document["targets"]:
        state = {True: "met", False: "missed", None: "not measured"}[target["met"]]
        lines.append(f"| {target['target']} | {target['measured'] or '-'} | {state} |")
    lines += ["", "![throughput and latency per contender](latest.svg)", ""]
    return "\n".join(lines)


def format_load(values) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


def exit_status(document: dict, strict: bool) -> int:
    """Return 0 when at least one contender was measured and every run sent requests. With
    ``strict``, every contender must also pass its check and every request succeed."""
    measured = [name for name, entry in document["contenders"].items()
                if entry["status"] == "measured"]
    if not measured:
        print("error: no contender passed its check, so nothing was measured")
        return 1
    problems = []
    for scenario, results in document["scenarios"].items():
        for contender, result in results.items():
            if "error" in result or not result.get("requests"):
                problems.append(f"{scenario}/{contender} sent no requests")
            elif strict and result.get("errors"):
                problems.append(f"{scenario}/{contender} had {result['errors']} failed requests")
    if strict:
        problems += [f"{name} was not measured: {entry['status']}"
                     for name, entry in document["contenders"].items()
                     if entry["status"] != "measured"]
    for problem in problems:
        print(f"error: {problem}")
    return 1 if problems else 0


def pinning(meta: dict) -> str:
    """Describe where the load generator and the app ran. Reports written before --app-cpu
    existed have no app_cpu: the app then shared the load generator's CPU."""
    load_cpu = meta["load_cpu"]
    app_cpu = meta.get("app_cpu", load_cpu)
    if app_cpu == load_cpu:
        return f"load generator and app to CPU {load_cpu}"
    return f"load generator to CPU {load_cpu}, app to CPU {app_cpu}"
