#!/usr/bin/env python3
"""Measure how long this machine takes to wake a process on another, idle core.

Two processes pinned to different CPUs pass one byte back and forth over pipes, with a pause
before each round trip so that the other core goes idle. Every request through a proxy in
`loadtest/bench` crosses between the proxy's core and the load core four times, so on a
machine where this round trip is slow, that cost dominates what any proxy adds at a low
`fixed_rate`. The times include Python's own overhead of a few microseconds per step.

    python3 loadtest/wake_latency.py            # CPUs 0 and 1, 0.5 ms pause, 3000 trips
    python3 loadtest/wake_latency.py --pause-ms 0 --trips 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", default="0,1",
                        help="the two CPUs, comma-separated (default 0,1)")
    parser.add_argument("--pause-ms", type=float, default=0.5,
                        help="pause before each round trip, in milliseconds (default 0.5)")
    parser.add_argument("--trips", type=int, default=3000,
                        help="round trips to time (default 3000)")
    args = parser.parse_args()
    try:
        first, second = (int(cpu) for cpu in args.cpus.split(","))
    except ValueError:
        parser.error(f"--cpus {args.cpus!r}: give two CPU numbers such as 0,1")
    available = os.sched_getaffinity(0)
    for cpu in (first, second):
        if cpu not in available:
            parser.error(f"--cpus {args.cpus!r}: CPU {cpu} is not available to this process "
                         f"(available: {sorted(available)})")
    if args.trips < 1:
        parser.error(f"--trips {args.trips}: give at least 1")
    args.cpu_pair = (first, second)
    return args


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main() -> int:
    args = parse_args()
    first, second = args.cpu_pair
    to_echo_read, to_echo_write = os.pipe()
    from_echo_read, from_echo_write = os.pipe()
    child = os.fork()
    if child == 0:
        # The echo process: returns every byte until it reads "q".
        os.sched_setaffinity(0, {second})
        while True:
            byte = os.read(to_echo_read, 1)
            if byte in (b"q", b""):
                os._exit(0)
            os.write(from_echo_write, byte)

    os.sched_setaffinity(0, {first})
    pause = args.pause_ms / 1000
    round_trips_us = []
    try:
        for _ in range(args.trips):
            if pause:
                time.sleep(pause)
            started = time.perf_counter_ns()
            os.write(to_echo_write, b"x")
            os.read(from_echo_read, 1)
            round_trips_us.append((time.perf_counter_ns() - started) / 1000)
    finally:
        os.write(to_echo_write, b"q")
        os.waitpid(child, 0)

    round_trips_us.sort()
    print(f"CPU {first} <-> CPU {second}, {args.trips} round trips after a "
          f"{args.pause_ms:g} ms pause: p50 {percentile(round_trips_us, 0.5):.1f} us, "
          f"p90 {percentile(round_trips_us, 0.9):.1f} us, "
          f"p99 {percentile(round_trips_us, 0.99):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
