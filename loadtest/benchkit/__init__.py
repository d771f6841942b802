"""The side-by-side benchmark behind ``loadtest/bench``.

Modules, in the order a run uses them:

- ``setup``: installs wrk, HAProxy, Envoy and k6 when missing, builds the Rust binaries,
  generates the token set.
- ``procs``: child processes pinned to a CPU, with CPU time and resident memory read from
  ``/proc``.
- ``contenders``: direct, Portcullis, Envoy and HAProxy, each with its configuration, its
  readiness probe and the valid/forged/expired token check.
- ``loadgen``: wrk and k6 runs and the parsing of their results.
- ``scenarios``: the measured scenarios.
- ``report``: the terminal table, ``latest.json``, the Markdown report; ``chart`` draws the SVG.
"""
