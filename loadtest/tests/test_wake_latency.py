"""Runs loadtest/wake_latency.py briefly, so the diagnostic the results cite keeps working."""

import os
import subprocess
import sys
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "wake_latency.py"


class WakeLatencyTests(unittest.TestCase):
    @unittest.skipUnless(len(os.sched_getaffinity(0)) >= 2, "needs two CPUs")
    def test_prints_percentiles(self):
        first, second = sorted(os.sched_getaffinity(0))[:2]
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--cpus", f"{first},{second}", "--pause-ms", "0",
             "--trips", "50"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"50 round trips .*: p50 [\d.]+ us, p90 [\d.]+ us, "
                                        r"p99 [\d.]+ us")

    def test_unavailable_cpu_is_named(self):
        available = min(os.sched_getaffinity(0))
        unavailable = max(os.sched_getaffinity(0)) + 1
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--cpus", f"{available},{unavailable}",
             "--trips", "1"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 2)
        self.assertIn(f"CPU {unavailable} is not available", result.stderr)


if __name__ == "__main__":
    unittest.main()
