"""Unit tests of the runner's pure parts: figures, ratios, targets, exit status and chart.

Run from the repository root: python3 -m unittest discover -s loadtest/tests -t loadtest
"""

import contextlib
import io
import json
import os
import shutil
import stat
import tempfile
import unittest
import xml.dom.minidom
from pathlib import Path
from unittest import mock

from benchkit import chart, report
from benchkit.cli import choose_rate, run_microbenchmark
from benchkit.loadgen import oha_figures
from benchkit.scenarios import PLANS, _summarise
from benchkit.setup import SetupError, build_microbenchmark


def result(rps, p99_ms=1.0, cpu_s=None, rss_mb=None, errors=0, requests=1000):
    entry = {"rps": rps, "p50_ms": p99_ms / 2, "p90_ms": p99_ms, "p99_ms": p99_ms,
             "requests": requests, "errors": errors}
    if cpu_s is not None:
        entry.update(cpu_s=cpu_s, rss_mb=rss_mb, cpu_busy=0.9)
    return entry


def sample_document():
    contenders = {
        "direct": {"status": "measured", "failures": []},
        "portcullis": {"status": "measured", "failures": [], "startup_ms": 8.0,
                       "rss_idle_mb": 9.0},
        "envoy": {"status": "measured", "failures": [], "startup_ms": 120.0,
                  "rss_idle_mb": 60.0},
        "haproxy": {"status": "measured", "failures": [], "startup_ms": 40.0,
                    "rss_idle_mb": 15.0},
    }
    scenarios = {
        "repeated_token": {
            "direct": result(50000),
            "portcullis": result(30000, cpu_s=3.0, rss_mb=11.0),
            "envoy": result(15000, cpu_s=6.0, rss_mb=66.0),
            "haproxy": result(25000, cpu_s=5.0, rss_mb=15.0),
        },
        "connections_1000": {
            "portcullis": result(10000, cpu_s=5.0, rss_mb=40.0),
            "envoy": result(8000, cpu_s=11.0, rss_mb=180.0),
        },
        "fixed_rate": {
            "direct": result(1000, p99_ms=1.0),
            "portcullis": result(1000, p99_ms=2.0, cpu_s=10.0, rss_mb=40.0),
            "envoy": result(1000, p99_ms=4.0, cpu_s=20.0, rss_mb=180.0),
        },
    }
    return report.build({"mode": "quick"}, contenders, scenarios)


def overhead(algorithm, miss_pct, miss_cached_pct, miss_inserted_pct=None):
    """One algorithm's entry as ``verify_overhead --json`` prints it; without
    ``miss_inserted_pct``, as it printed before it timed misses that fill the cache."""
    def spread(median):
        return {"median": median, "p10": median - 1.5, "p90": median + 1.5}

    bare = 13.0
    entry = {"algorithm": algorithm, "bare_us": bare, "miss_us": bare * (1 + miss_pct / 100),
             "miss_cached_us": bare * (1 + miss_cached_pct / 100),
             "miss_over_bare_pct": spread(miss_pct),
             "miss_cached_over_bare_pct": spread(miss_cached_pct)}
    if miss_inserted_pct is not None:
        entry["miss_inserted_us"] = bare * (1 + miss_inserted_pct / 100)
        entry["miss_inserted_over_bare_pct"] = spread(miss_inserted_pct)
    return entry


def with_verification(*algorithms):
    document = sample_document()
    verification = {"rounds": 101, "batch": 256, "algorithms": list(algorithms)}
    return report.build(document["meta"], document["contenders"], document["scenarios"],
                        verification)


def target(document, text):
    return next(entry for entry in document["targets"] if entry["target"].startswith(text))


class RatioTests(unittest.TestCase):
    def test_ratio_divides_by_reference(self):
        ratios = sample_document()["ratios"]
        self.assertEqual(ratios["portcullis"]["vs_envoy"]["repeated_token"]["rps"], 2.0)
        self.assertEqual(ratios["portcullis"]["vs_haproxy"]["repeated_token"]["cpu_s"], 0.6)
        self.assertEqual(ratios["portcullis"]["vs_envoy"]["rss_idle_mb"], 0.15)

    def test_ratio_skips_missing_reference(self):
        ratios = sample_document()["ratios"]
        self.assertNotIn("connections_1000", ratios["portcullis"]["vs_haproxy"])


class TargetTests(unittest.TestCase):
    def test_throughput_target_met_and_missed(self):
        document = sample_document()
        self.assertTrue(target(document, "repeated_token rps >= 2.0 x envoy")["met"])
        self.assertFalse(target(document, "repeated_token rps >= 1.5 x haproxy")["met"])

    def test_unmeasured_target_is_none(self):
        self.assertIsNone(target(sample_document(), "unique_tokens rps >= 2.0 x envoy")["met"])

    def test_added_latency_compares_to_direct(self):
        # Portcullis adds 1 ms over direct, Envoy 3 ms: at most half of Envoy's is met.
        entry = target(sample_document(), "fixed_rate p99 added")
        self.assertTrue(entry["met"])
        self.assertIn("1.000 ms added", entry["measured"])

    def test_memory_and_startup_targets(self):
        document = sample_document()
        self.assertTrue(target(document, "idle RSS <= 10 MiB")["met"])
        self.assertTrue(target(document, "RSS under 1000 connections")["met"])
        self.assertTrue(target(document, "ready <= 100 ms")["met"])


class MissTargetTests(unittest.TestCase):
    def test_miss_target_per_algorithm(self):
        document = with_verification(overhead("RS256", 7.5, 7.2, 8.4),
                                     overhead("ES256", 2.0, 1.9))
        entry = target(document, "cache miss <= 1.1 x the bare signature check (RS256)")
        self.assertTrue(entry["met"])
        self.assertEqual(entry["measured"], "+7.2% with a full cache, +8.4% filling the cache, "
                                            "+7.5% without the cache")
        self.assertEqual(target(document, "cache miss <= 1.1 x the bare signature check (ES256)")
                         ["measured"], "+1.9% with a full cache, +2.0% without the cache")
        self.assertTrue(target(document, "cache miss <= 1.1 x the bare signature check (ES256)")
                        ["met"])

    def test_miss_target_needs_every_median(self):
        document = with_verification(overhead("RS256", 10.4, 9.0))
        self.assertFalse(target(document, "cache miss <= 1.1 x")["met"])
        document = with_verification(overhead("RS256", 7.0, 7.0, 10.2))
        self.assertFalse(target(document, "cache miss <= 1.1 x")["met"])

    def test_miss_target_unmeasured_without_microbenchmark(self):
        self.assertIsNone(target(sample_document(), "cache miss <= 1.1 x")["met"])

    def test_miss_target_unmeasured_without_algorithms(self):
        self.assertIsNone(target(with_verification(), "cache miss <= 1.1 x")["met"])

    def test_report_lists_microbenchmark(self):
        document = with_verification(overhead("RS256", 7.5, 7.2, 8.0), overhead("ES256", 2.0, 1.9))
        text = report.markdown({**document, "meta": {**MARKDOWN_META, "mode": "full"}})
        self.assertIn("| RS256 | 13.00 | 13.97 | 13.94 | 14.04 | +7.5% (+6.0% to +9.0%) | "
                      "+7.2% (+5.7% to +8.7%) | +8.0% (+6.5% to +9.5%) |", text)
        self.assertIn("| ES256 | 13.00 | 13.26 | 13.25 | - | +2.0% (+0.5% to +3.5%) | "
                      "+1.9% (+0.4% to +3.4%) | - |", text)
        self.assertIn("101 rounds of 256 operations", text)


MARKDOWN_META = {"command": "loadtest/bench", "commit": "abc", "mode": "full",
                 "build": "deploy", "started_at": "now", "elapsed_s": 1.0,
                 "machine": {"cores": 2, "cpu_model": "cpu", "memory_gib": 1, "kernel": "6"},
                 "load_average_before": [0, 0, 0], "load_average_after": [0, 0, 0],
                 "proxy_cpu": 0, "load_cpu": 1, "app_cpu": 1, "nice": 0,
                 "algorithm": "RS256", "unique_tokens": 1, "versions": {}}


class MicrobenchmarkRunTests(unittest.TestCase):
    def program(self, script):
        """Write an executable shell script standing in for verify_overhead."""
        folder = Path(tempfile.mkdtemp())
        path = folder / "verify_overhead"
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self.addCleanup(lambda: (path.unlink(), folder.rmdir()))
        return path

    def run_quietly(self, path):
        with contextlib.redirect_stdout(io.StringIO()):
            return run_microbenchmark(path, cpu=0)

    def test_reads_last_line_as_json(self):
        document = {"rounds": 1, "batch": 1, "algorithms": [overhead("RS256", 1.0, 1.0)]}
        path = self.program(f"echo building\necho '{json.dumps(document)}'\n")
        self.assertEqual(self.run_quietly(path), document)

    def test_failure_gives_none(self):
        self.assertIsNone(self.run_quietly(self.program("echo broken >&2\nexit 3\n")))

    def test_text_output_gives_none(self):
        self.assertIsNone(self.run_quietly(self.program("echo 'RS256 13.0 us'\n")))

    def test_json_without_algorithms_gives_none(self):
        self.assertIsNone(self.run_quietly(self.program("echo '[1, 2]'\n")))


class MicrobenchmarkBuildTests(unittest.TestCase):
    def build_with(self, cargo_script):
        """Run build_microbenchmark with ``cargo_script`` as the only cargo on PATH."""
        folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, folder)
        if cargo_script is not None:
            cargo = folder / "cargo"
            cargo.write_text("#!/bin/sh\n" + cargo_script)
            cargo.chmod(cargo.stat().st_mode | stat.S_IXUSR)
        with mock.patch.dict(os.environ, {"PATH": str(folder)}), \
                contextlib.redirect_stdout(io.StringIO()):
            return build_microbenchmark()

    def test_executable_found_among_other_lines(self):
        artifact = {"reason": "compiler-artifact", "executable": "/x/verify_overhead-1",
                    "target": {"name": "verify_overhead"}}
        path = self.build_with(f"echo '{{not json'\necho '[1]'\necho '{json.dumps(artifact)}'\n")
        self.assertEqual(path, Path("/x/verify_overhead-1"))

    def test_missing_cargo_is_a_setup_error(self):
        with self.assertRaises(SetupError) as raised:
            self.build_with(None)
        self.assertIn("--no-microbenchmark", str(raised.exception))

    def test_failed_build_is_a_setup_error(self):
        with self.assertRaises(SetupError):
            self.build_with("echo 'error: broken' >&2\nexit 101\n")

    def test_no_executable_is_a_setup_error(self):
        with self.assertRaises(SetupError):
            self.build_with("echo '{\"reason\": \"build-finished\"}'\n")


def exit_status(document, strict):
    """Return report.exit_status's result and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = report.exit_status(document, strict=strict)
    return status, printed.getvalue()


class ExitStatusTests(unittest.TestCase):
    def test_clean_run_exits_zero(self):
        self.assertEqual(exit_status(sample_document(), strict=True), (0, ""))

    def test_failed_requests_fail_strict_only(self):
        document = sample_document()
        document["scenarios"]["repeated_token"]["portcullis"]["errors"] = 3
        self.assertEqual(exit_status(document, strict=False)[0], 0)
        status, printed = exit_status(document, strict=True)
        self.assertEqual(status, 1)
        self.assertIn("repeated_token/portcullis had 3 failed requests", printed)

    def test_run_without_requests_fails(self):
        document = sample_document()
        document["scenarios"]["repeated_token"]["envoy"]["requests"] = 0
        status, printed = exit_status(document, strict=False)
        self.assertEqual(status, 1)
        self.assertIn("repeated_token/envoy", printed)

    def test_nothing_measured_fails(self):
        document = sample_document()
        for entry in document["contenders"].values():
            entry["status"] = "failed_check"
        status, printed = exit_status(document, strict=False)
        self.assertEqual(status, 1)
        self.assertIn("no contender passed its check", printed)


class SummaryTests(unittest.TestCase):
    def test_cpu_per_100k_requests(self):
        figures = {"requests": 50_000, "rps": 5000.0, "p50_ms": 1.0, "p99_ms": 2.0,
                   "non_2xx": 2, "errors_timeout": 1}
        summary = _summarise(figures, cpu=2.0, wall=10.0, rss_mb=12.34)
        self.assertEqual(summary["cpu_s"], 4.0)
        self.assertEqual(summary["cpu_busy"], 0.2)
        self.assertEqual(summary["rss_mb"], 12.3)
        self.assertEqual(summary["errors"], 3)

    def test_direct_has_no_process_figures(self):
        summary = _summarise({"requests": 10, "rps": 1.0}, None, None, None)
        self.assertNotIn("cpu_s", summary)


def oha_report(statuses, errors=None, rps=1000.0):
    """An oha JSON report as version 1.16 prints it, cut to the fields the runner reads."""
    return {
        "summary": {"requestsPerSec": rps, "slowest": 0.0042},
        "latencyPercentiles": {"p50": 0.00025, "p90": 0.0003, "p99": 0.0006},
        "statusCodeDistribution": statuses,
        "errorDistribution": errors or {},
    }


class OhaFiguresTests(unittest.TestCase):
    def test_seconds_become_milliseconds(self):
        figures = oha_figures(oha_report({"200": 2000}), rate=1000, seconds=2)
        self.assertEqual(figures["requests"], 2000)
        self.assertAlmostEqual(figures["p50_ms"], 0.25)
        self.assertAlmostEqual(figures["p99_ms"], 0.6)
        self.assertAlmostEqual(figures["max_ms"], 4.2)
        self.assertEqual(figures["failed"], 0)
        self.assertEqual(figures["dropped"], 0)

    def test_errors_and_other_statuses_fail(self):
        report_ = oha_report({"200": 1990, "401": 4, "503": 1},
                             errors={"Connection reset by peer (os error 104)": 5})
        figures = oha_figures(report_, rate=1000, seconds=2)
        self.assertEqual(figures["requests"], 2000)
        self.assertEqual(figures["failed"], 10)
        self.assertEqual(_summarise(figures, None, None, None)["errors"], 10)

    def test_requests_never_sent_are_dropped(self):
        figures = oha_figures(oha_report({"200": 1500}), rate=1000, seconds=2)
        self.assertEqual(figures["dropped"], 500)

    def test_small_shortfall_not_dropped(self):
        figures = oha_figures(oha_report({"200": 19_980}), rate=5000, seconds=4)
        self.assertEqual(figures["dropped"], 0)
        figures = oha_figures(oha_report({"200": 19_979}), rate=5000, seconds=4)
        self.assertEqual(figures["dropped"], 21)

    def test_no_answer_leaves_latency_unmeasured(self):
        report_ = oha_report({}, errors={"Connection refused (os error 111)": 2000})
        report_["summary"]["slowest"] = None
        report_["latencyPercentiles"] = {}
        figures = oha_figures(report_, rate=1000, seconds=2)
        self.assertIsNone(figures["p99_ms"])
        self.assertEqual(figures["failed"], 2000)


class RateTests(unittest.TestCase):
    def test_rate_is_half_the_slowest_capped(self):
        plan = PLANS["full"]
        slow = {"repeated_token": {"a": {"rps": 3050.0}, "b": {"rps": 9000.0}}}
        self.assertEqual(choose_rate(slow, plan), 1500)
        fast = {"repeated_token": {"a": {"rps": 90000.0}}}
        self.assertEqual(choose_rate(fast, plan), plan.max_fixed_rate)

    def test_rate_capped_lower_for_k6(self):
        plan = PLANS["full"]
        fast = {"repeated_token": {"a": {"rps": 90000.0}}}
        self.assertEqual(choose_rate(fast, plan, "k6"), plan.max_k6_fixed_rate)
        self.assertEqual(choose_rate(fast, plan, "oha"), plan.max_fixed_rate)
        self.assertLess(plan.max_k6_fixed_rate, plan.max_fixed_rate)

    def test_rate_has_a_floor(self):
        self.assertEqual(choose_rate({"repeated_token": {"a": {"rps": 50.0}}}, PLANS["full"]),
                         100)


class ChartTests(unittest.TestCase):
    def test_chart_is_valid_svg_with_bars(self):
        svg = chart.render(sample_document())
        root = xml.dom.minidom.parseString(svg).documentElement
        self.assertEqual(root.tagName, "svg")
        titles = [node.firstChild.data for node in root.getElementsByTagName("title")]
        self.assertIn("portcullis repeated_token: 30,000", titles)
        self.assertIn("envoy p99_ms: 4", titles)

    def test_chart_without_fixed_rate(self):
        document = sample_document()
        del document["scenarios"]["fixed_rate"]
        xml.dom.minidom.parseString(chart.render(document))

    def test_pinning_shared_load_core(self):
        self.assertEqual(report.pinning({"load_cpu": 1, "app_cpu": 1}),
                         "load generator and app to CPU 1")

    def test_pinning_separate_app_core(self):
        self.assertEqual(report.pinning({"load_cpu": 1, "app_cpu": 2}),
                         "load generator to CPU 1, app to CPU 2")

    def test_pinning_older_report(self):
        self.assertEqual(report.pinning({"load_cpu": 1}), "load generator and app to CPU 1")


if __name__ == "__main__":
    unittest.main()
