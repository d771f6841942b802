"""Child processes of a benchmark run: started pinned to one CPU with ``taskset``, their
CPU time and resident memory read from ``/proc``, and stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process could take it before the caller binds it, which fails that start with
    "address in use" rather than sending traffic anywhere else.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """One child process pinned to ``cpu``; its output goes to ``log_path``."""

    def __init__(self, name: str, argv: list[str], cpu: int, log_path: Path,
                 env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.cpu = cpu
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Start the process. ``taskset`` execs the program, so the child's PID is its own."""
        environment = dict(os.environ)
        if self.env:
            environment.update(self.env)
        log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            ["taskset", "-c", str(self.cpu), *self.argv],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment)
        log.close()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """Return user plus system CPU time of every thread so far, in seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name may contain spaces, so split after its closing parenthesis.
        fields = stat[stat.rindex(")") + 2:].split()
        user_ticks, system_ticks = int(fields[11]), int(fields[12])
        return (user_ticks + system_ticks) / CLOCK_TICKS_PER_SECOND

    def rss_mb(self) -> float:
        """Return the resident set size (VmRSS) in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"{self.name} (pid {self.pid}) reports no VmRSS")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Send SIGTERM and wait; send SIGKILL if it is still running after ``timeout``."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class PeakRssSampler:
    """Samples a process's resident memory every ``interval`` seconds and keeps the peak."""

    def __init__(self, process: Process, interval: float = 0.1):
        self.process = process
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, self.process.rss_mb())
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)


class Response:
    """The parts of an HTTP response the checks look at."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body


def http_get(port: int, path: str, token: str | None = None, timeout: float = 5.0) -> Response:
    """Send one GET to 127.0.0.1:``port`` on a new connection and return the response."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return Response(response.status,
                        {name.lower(): value for name, value in response.getheaders()}, body)
    finally:
        connection.close()


def wait_until(probe, timeout: float, interval: float = 0.002) -> bool:
    """Call ``probe`` until it returns true or ``timeout`` seconds pass; return the last result.

    Connection errors count as "not yet", so the probe can run before the port is open.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return True
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
