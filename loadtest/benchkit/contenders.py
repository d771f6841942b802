"""The four contenders: ``direct`` (no proxy), Portcullis, Envoy and HAProxy.

Each proxy runs one worker thread, listens on plain HTTP on 127.0.0.1, forwards to the same
``bench-upstream`` app, verifies the same tokens with the same key, and checks the same
claims: signature, ``iss``, ``aud`` and ``exp`` with 60 seconds of clock skew. None writes an
access log. Envoy and Portcullis keep a cache of verified tokens; HAProxy has none.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import Process, free_port, http_get, wait_until
from .setup import Binaries, TokenSet

# The path every load run requests: the order app's "get an order" route, so the proxies
# match routes against a realistic path.
REQUEST_PATH = "/orders/bench"
UPSTREAM_MARKER = "x-bench-upstream"
# Clock skew allowed on `exp`, the default of both Portcullis and Envoy's jwt_authn.
CLOCK_SKEW_SECS = 60
# Verified tokens a cache may keep: Portcullis's default, and Envoy set to match.
TOKEN_CACHE_ENTRIES = 10_000
# Maximum connections each proxy may open to the app. Further requests wait in the proxy's
# queue: Portcullis's upstream_max_connections, Envoy's circuit breaker with an unbounded
# pending queue, HAProxy's server maxconn. Without a cap, 1000 client connections would make
# every proxy open as many to the app, and the run would measure connection handling rather
# than the proxies.
APP_CONNECTIONS = 64


@dataclass
class RunContext:
    """Settings and files that every contender of one run shares."""

    work: Path
    binaries: Binaries
    tokens: TokenSet
    upstream_port: int
    proxy_cpu: int
    programs: dict[str, str] = field(default_factory=dict)

    @property
    def jwks_uri(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/.well-known/jwks.json"


class Contender:
    """A proxy (or none) under test. ``start`` launches it; ``port`` is where load goes."""

    name = ""
    program = ""

    def __init__(self, context: RunContext):
        self.context = context
        self.port = 0
        self.process: Process | None = None

    def write_config(self) -> list[str]:
        """Write the configuration for ``self.port`` and return the command line."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def start(self) -> float:
        """Start the proxy and return milliseconds from process start to its first 200 for a
        valid token, which is when it is ready to serve. Raise RuntimeError if it never is."""
        self.port = free_port()
        argv = self.write_config()
        log = self.context.work / f"{self.name}.log"
        self.process = Process(self.name, argv, self.context.proxy_cpu, log, self.environment())
        self.process.start()
        token = self.context.tokens.first("valid")

        def serves_valid_token() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"{self.name} exited at startup:\n{self.process.log_tail()}")
            return http_get(self.port, REQUEST_PATH, token, timeout=1.0).status == 200

        if not wait_until(serves_valid_token, timeout=30):
            tail = self.process.log_tail()
            self.stop()
            raise RuntimeError(f"{self.name} did not serve a valid token within 30 s:\n{tail}")
        return (time.monotonic() - self.process.started_at) * 1000

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class Direct(Contender):
    """No proxy: the load generator sends straight to the app, the limit a proxy approaches."""

    name = "direct"

    def start(self) -> float:
        self.port = self.context.upstream_port
        return 0.0


class Portcullis(Contender):
    name = "portcullis"

    def write_config(self) -> list[str]:
        context = self.context
        admin_port = free_port()
        config = f"""# Written by loadtest/bench for one benchmark run.
# Stops between runs take a second instead of the 20-second default drain.
shutdown_grace_secs = 1
# One worker thread, like Envoy's --concurrency 1 and HAProxy's nbthread 1.
worker_threads = 1

[inbound]
listen = "127.0.0.1:{self.port}"
upstream = "http://127.0.0.1:{context.upstream_port}"
realm = "orders"
upstream_max_connections = {APP_CONNECTIONS}

[[providers]]
issuer = "{context.tokens.issuer}"
audiences = ["{context.tokens.audience}"]
jwks_uri = "{context.jwks_uri}"
algorithms = ["{context.tokens.algorithm}"]
leeway_secs = {CLOCK_SKEW_SECS}

[admin]
listen = "127.0.0.1:{admin_port}"

[cache]
max_entries = {TOKEN_CACHE_ENTRIES}
"""
        path = context.work / "portcullis.toml"
        path.write_text(config)
        return [str(context.binaries.portcullis), "--config", str(path)]

    def environment(self) -> dict[str, str]:
        # `warn` turns off the per-request access log (info).
        return {"RUST_LOG": "warn", "NO_COLOR": "1"}


class Envoy(Contender):
    name = "envoy"
    program = "envoy"

    def write_config(self) -> list[str]:
        context = self.context
        admin_port = free_port()
        jwt_authn = {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "issuer": context.tokens.issuer,
                    "audiences": [context.tokens.audience],
                    "local_jwks": {"filename": str(context.tokens.jwks)},
                    "forward": True,
                    "clock_skew_seconds": CLOCK_SKEW_SECS,
                    "jwt_cache_config": {"jwt_cache_size": TOKEN_CACHE_ENTRIES},
                    # The same identity headers Portcullis sets for the app.
                    "claim_to_headers": [
                        {"header_name": "x-jwt-subject", "claim_name": "sub"},
                        {"header_name": "x-jwt-scope", "claim_name": "scope"},
                    ],
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        }
        manager = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "inbound",
            "route_config": {"virtual_hosts": [{
                "name": "app", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
            "http_filters": [
                {"name": "envoy.filters.http.jwt_authn", "typed_config": jwt_authn},
                {"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
            ],
        }
        # Envoy's default circuit breakers would return 503 once 1024 requests wait. Here the
        # connections are capped like the other proxies' and the queue is unbounded.
        breakers = {"max_connections": APP_CONNECTIONS, "max_pending_requests": 1_000_000,
                     "max_requests": 1_000_000}
        config = {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                     "port_value": admin_port}}},
            "static_resources": {
                "listeners": [{
                    "name": "inbound",
                    "address": {"socket_address": {"address": "127.0.0.1",
                                                   "port_value": self.port}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager}]}],
                }],
                "clusters": [{
                    "name": "app",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "circuit_breakers": {"thresholds": [breakers]},
                    "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{
                        "endpoint": {"address": {"socket_address": {
                            "address": "127.0.0.1",
                            "port_value": context.upstream_port}}}}]}]},
                }],
            },
        }
        path = context.work / "envoy.json"
        path.write_text(json.dumps(config, indent=1))
        return [context.programs["envoy"], "-c", str(path), "--concurrency", "1",
                "--disable-hot-restart", "--log-level", "warning"]


class HAProxy(Contender):
    name = "haproxy"
    program = "haproxy"

    def write_config(self) -> list[str]:
        context = self.context
        tokens = context.tokens
        reject = ("http-request return status 401 content-type application/json "
                  "string '{\"error\":\"invalid_token\"}' "
                  "hdr www-authenticate 'Bearer realm=\"orders\", error=\"invalid_token\"'")
        config = f"""# Written by loadtest/bench for one benchmark run.
global
    nbthread 1
    # 1000 client connections plus as many to the app, with headroom.
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 30s
    option http-keep-alive

frontend inbound
    bind 127.0.0.1:{self.port}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request return status 401 hdr www-authenticate 'Bearer realm="orders"' unless {{ var(txn.bearer) -m found }}
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date
    {reject} unless {{ var(txn.alg) -m str {tokens.algorithm} }}
    {reject} unless {{ var(txn.iss) -m str {tokens.issuer} }}
    {reject} unless {{ var(txn.aud) -m str {tokens.audience} }}
    {reject} unless {{ var(txn.exp),add({CLOCK_SKEW_SECS}),sub(txn.now) -m int gt 0 }}
    {reject} unless {{ var(txn.bearer),jwt_verify(txn.alg,"{tokens.public_key}") -m int 1 }}
    http-request set-header x-jwt-subject %[var(txn.bearer),jwt_payload_query('$.sub')]
    http-request set-header x-jwt-scope %[var(txn.bearer),jwt_payload_query('$.scope')]
    default_backend app

backend app
    server app 127.0.0.1:{context.upstream_port} maxconn {APP_CONNECTIONS}
"""
        path = context.work / "haproxy.cfg"
        path.write_text(config)
        return [context.programs["haproxy"], "-db", "-f", str(path)]


CONTENDERS = {cls.name: cls for cls in (Direct, Portcullis, Envoy, HAProxy)}


@dataclass
class CheckResult:
    passed: bool
    failures: list[str]


def check_contender(contender: Contender) -> CheckResult:
    """Check that the contender accepts a valid token and rejects a forged token, an expired
    token and a missing one, and that no rejected request reached the app."""
    tokens = contender.context.tokens
    upstream = contender.context.upstream_port
    failures = []

    def served() -> int:
        return int(http_get(upstream, "/.bench/requests").body)

    response = http_get(contender.port, REQUEST_PATH, tokens.first("valid"))
    if response.status != 200 or UPSTREAM_MARKER not in response.headers:
        failures.append(f"valid token: expected 200 from the app, got {response.status}")

    if contender.name != "direct":
        cases = [("forged token", tokens.first("forged")),
                 ("expired token", tokens.first("expired")),
                 ("missing token", None)]
        for label, token in cases:
            before = served()
            response = http_get(contender.port, REQUEST_PATH, token)
            reached = served() - before
            if response.status != 401:
                failures.append(f"{label}: expected 401, got {response.status}")
            if reached:
                failures.append(f"{label}: the request reached the app")
    return CheckResult(passed=not failures, failures=failures)
