"""Token endpoint side by side (issue 9): Ostiary against panva's ``oidc-provider``.

Both issue the same thing: a confidential client authenticates with ``client_secret_basic``,
asks for ``grant_type=client_credentials`` and gets an ES256 JWT access token (``typ:
at+jwt``, RFC 9068). Each round runs, one after the other, A B A B ...:

- **Ostiary**: ``ostiary serve --workers 1`` on a fresh SQLite data directory, a client set
  up through the admin API; ``POST /oauth/token``;
- **the peer**: ``oidc-provider`` 9.13 (Node.js, OpenID Certified) from ``peer/server.mjs``,
  in-memory adapter, one static client, ``NODE_ENV=production``; ``POST /token``.

Each server runs alone, pinned to ``--server-cpu`` (``taskset``), and ``wrk`` runs pinned
to ``--wrk-cpu`` with the identical request (``peer/token.lua``: the same method, headers
and body; only the Basic credentials and the path differ). Before measuring, one token
from each is verified against its JWKS (ES256, ``at+jwt``, a published ``kid``), then
``--warmup`` seconds are discarded. The script prints each round and a table with the
median ratio Ostiary/peer of tokens per second, and the same as JSON in
``benchmarks/results/token-peer-<time>.json``. The ratio of one run is what counts:
absolute figures move with whatever else runs on the machine.

The peer installs from the npm registry into ``benchmarks/peer/node_modules`` (``npm
ci``, once; git-ignored). Needs ``node``/``npm``, ``wrk`` and ``taskset``. Run with the
project's virtualenv: ``.venv/bin/python benchmarks/token_peer.py --rounds 3``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from rich.console import Console
from rich.table import Table

# benchmarks/runtime.py, beside this script (its directory is first on sys.path).
from runtime import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    HOST,
    Child,
    basic,
    cpu_seconds,
    free_port,
    local_env,
    start_server,
)

HERE = Path(__file__).resolve().parent
PEER = HERE / "peer"
PEER_FILES = ("package.json", "package-lock.json", "server.mjs", "token.lua")
# The static client of peer/server.mjs.
PEER_CLIENT = ("bench", "bench-secret-0123456789abcdef0123456789")
SUBDOMAIN = "bench"
GOAL = 1.5
console = Console(width=None if sys.stdout.isatty() else 130)


@dataclass(frozen=True)
class Run:
    """One server measured once."""

    server: str
    tokens_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_ms_per_token: float
    rss_idle_mib: float
    rss_after_mib: float
    load_average_before: float


@dataclass(frozen=True)
class Round:
    """Ostiary and the peer, measured back to back."""

    ostiary: Run
    peer: Run

    @property
    def ratio(self) -> float:
        """Ostiary's tokens/s over the peer's."""
        return self.ostiary.tokens_per_second / self.peer.tokens_per_second

    @property
    def cpu_ratio(self) -> float:
        """The peer's CPU per token over Ostiary's (steadier than tokens/s on a busy box)."""
        return self.peer.cpu_ms_per_token / self.ostiary.cpu_ms_per_token


def install_peer(peer_dir: Path, npm: str) -> None:
    """Copy the peer's files to ``peer_dir`` if they are not there, and ``npm ci`` them
    unless the locked ``oidc-provider`` is already installed."""
    peer_dir.mkdir(parents=True, exist_ok=True)
    for name in PEER_FILES:
        if not (peer_dir / name).exists():
            shutil.copy(PEER / name, peer_dir / name)
    lock = json.loads((peer_dir / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/oidc-provider"]["version"]
    installed = peer_dir / "node_modules" / "oidc-provider" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == wanted:
        return
    console.print(f"installing oidc-provider {wanted} into {peer_dir} (npm ci) …")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=peer_dir, check=True, timeout=600
    )


def rss_mib(pid: int) -> float:
    """VmRSS of the worker: ``pid`` itself with one worker (uvicorn serves in-process),
    else the sum of its children (uvicorn's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for worker in children or [str(pid)]:
        status = Path(f"/proc/{worker}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(found.group(1)) if found else 0
    return total / 1024


def check_token(token: str, jwks: dict[str, Any], server: str) -> dict[str, Any]:
    """Fail unless ``token`` is an ES256 ``at+jwt`` signed by a key of ``jwks``."""
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "ES256" or str(header.get("typ")).lower() != "at+jwt":
        raise RuntimeError(f"{server}: not an ES256 at+jwt token: {header}")
    keys = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    if not keys:
        raise RuntimeError(f"{server}: kid {header.get('kid')!r} is not in the JWKS")
    claims: dict[str, Any] = jwt.decode(
        token, jwt.PyJWK(keys[0]).key, algorithms=["ES256"], options={"verify_aud": False}
    )
    return claims


def wrk(args: argparse.Namespace, url: str, credentials: str, seconds: int) -> dict[str, float]:
    """One bounded wrk run of ``peer/token.lua`` pinned to ``--wrk-cpu``; its RESULT line."""
    command = [
        "taskset",
        "--cpu-list",
        args.wrk_cpu,
        args.wrk,
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={seconds}s",
        "--timeout=5s",
        "--latency",
        f"--script={PEER / 'token.lua'}",
        url,
    ]
    env = dict(local_env(), BASIC=credentials)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 30)
    found = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}


def measure(
    args: argparse.Namespace, server: str, child: Child, url: str, credentials: str, idle: float
) -> Run:
    """Warm up, then measure one server with wrk and its CPU time from /proc."""
    if args.warmup > 0:
        wrk(args, url, credentials, args.warmup)
    load = os.getloadavg()[0]
    before = cpu_seconds(child.process.pid)
    got = wrk(args, url, credentials, args.duration)
    cpu = cpu_seconds(child.process.pid) - before
    errors = sum(got[k] for k in ("non2xx", "connect_err", "read_err", "write_err", "timeouts"))
    return Run(
        server=server,
        tokens_per_second=got["rps"],
        p50_ms=got["p50_ms"],
        p99_ms=got["p99_ms"],
        requests=int(got["requests"]),
        errors=int(errors),
        cpu_ms_per_token=cpu * 1000 / max(got["requests"], 1),
        rss_idle_mib=idle,
        rss_after_mib=rss_mib(child.process.pid),
        load_average_before=load,
    )


def ostiary_client(url: str) -> tuple[str, str]:
    """A sub-account, a technical user holding one role and its OAuth client, via the API."""
    admin = {"Authorization": basic(ADMIN_EMAIL, ADMIN_PASSWORD)}
    with httpx.Client(base_url=f"{url}/api/v1", headers=admin, timeout=30, trust_env=False) as api:

        def call(method: str, path: str, body: object) -> dict[str, Any]:
            answer = api.request(method, path, json=body)
            if answer.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            return dict(answer.json())

        sub = f"/subaccounts/{SUBDOMAIN}"
        call("POST", "/subaccounts", {"subdomain": SUBDOMAIN, "display_name": "Benchmark"})
        call("POST", f"{sub}/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]})
        user = call("POST", "/technical-users", {"display_name": "bench", "subdomain": SUBDOMAIN})
        assigned = {"role_collections": ["Senders"]}
        call("PUT", f"{sub}/users/{user['user_id']}/role-collections", assigned)
        client = call("POST", f"{sub}/oauth-clients", {"user_id": user["user_id"]})
    return str(client["client_id"]), str(client["client_secret"])


def first_token(url: str, path: str, jwks_path: str, client: tuple[str, str], name: str) -> None:
    """Ask for one token and verify it against the server's JWKS."""
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
        answer = http.post(path, data={"grant_type": "client_credentials"}, auth=client)
        if answer.status_code != 200:
            raise RuntimeError(f"{name} {path}: {answer.status_code} {answer.text}")
        check_token(answer.json()["access_token"], http.get(jwks_path).json(), name)


def run_ostiary(args: argparse.Namespace, home: Path) -> Run:
    """``ostiary serve --workers 1`` pinned alone, measured once."""
    home.mkdir()
    server, url = start_server(1, home, "WARNING", cpus=args.server_cpu)
    try:
        idle = rss_mib(server.process.pid)
        client = ostiary_client(url)
        first_token(url, "/oauth/token", "/oauth/jwks", client, "ostiary")
        credentials = base64.b64encode(":".join(client).encode()).decode()
        return measure(args, "ostiary", server, f"{url}/oauth/token", credentials, idle)
    finally:
        server.stop()


def run_peer(args: argparse.Namespace, home: Path) -> Run:
    """``oidc-provider`` pinned alone, measured once."""
    home.mkdir()
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = dict(local_env(), NODE_ENV="production", HOST=HOST, PORT=str(port))
    # node resolves server.mjs's imports beside the file: node_modules of the install.
    script = str(args.peer_dir / "server.mjs")
    server = Child(["taskset", "--cpu-list", args.server_cpu, args.node, script], env, home / "log")
    try:
        server.wait_ready(f"{url}/.well-known/openid-configuration")
        idle = rss_mib(server.process.pid)
        first_token(url, "/token", "/jwks", PEER_CLIENT, "oidc-provider")
        credentials = base64.b64encode(":".join(PEER_CLIENT).encode()).decode()
        return measure(args, "oidc-provider", server, f"{url}/token", credentials, idle)
    finally:
        server.stop()


def show(rounds: list[Round]) -> dict[str, float]:
    """Print the table of rounds and medians; return the medians."""
    table = Table(title="POST token, client_secret_basic, ES256 at+jwt: one pinned core each")
    columns = ["round", "ostiary tok/s", "p50/p99 ms", "CPU ms/tok", "peer tok/s", "p50/p99 ms"]
    for column in [*columns, "CPU ms/tok", "ratio", "CPU ratio"]:
        table.add_column(column, justify="right")
    for number, r in enumerate(rounds, 1):
        table.add_row(
            str(number),
            f"{r.ostiary.tokens_per_second:,.0f}",
            f"{r.ostiary.p50_ms:.1f}/{r.ostiary.p99_ms:.1f}",
            f"{r.ostiary.cpu_ms_per_token:.3f}",
            f"{r.peer.tokens_per_second:,.0f}",
            f"{r.peer.p50_ms:.1f}/{r.peer.p99_ms:.1f}",
            f"{r.peer.cpu_ms_per_token:.3f}",
            f"{r.ratio:.2f}",
            f"{r.cpu_ratio:.2f}",
        )
    medians = {
        "ostiary_tokens_per_second": statistics.median(r.ostiary.tokens_per_second for r in rounds),
        "peer_tokens_per_second": statistics.median(r.peer.tokens_per_second for r in rounds),
        "ostiary_cpu_ms_per_token": statistics.median(r.ostiary.cpu_ms_per_token for r in rounds),
        "peer_cpu_ms_per_token": statistics.median(r.peer.cpu_ms_per_token for r in rounds),
        "ratio": statistics.median(r.ratio for r in rounds),
        "cpu_ratio": statistics.median(r.cpu_ratio for r in rounds),
        "ostiary_rss_idle_mib": statistics.median(r.ostiary.rss_idle_mib for r in rounds),
        "peer_rss_idle_mib": statistics.median(r.peer.rss_idle_mib for r in rounds),
    }
    table.add_section()
    table.add_row(
        "median",
        f"{medians['ostiary_tokens_per_second']:,.0f}",
        "",
        f"{medians['ostiary_cpu_ms_per_token']:.3f}",
        f"{medians['peer_tokens_per_second']:,.0f}",
        "",
        f"{medians['peer_cpu_ms_per_token']:.3f}",
        f"{medians['ratio']:.2f}",
        f"{medians['cpu_ratio']:.2f}",
    )
    console.print(table)
    verdict = "met" if medians["ratio"] >= GOAL else "MISSED"
    console.print(
        f"ostiary/peer median ratio {medians['ratio']:.2f} (goal ≥ {GOAL}: {verdict}); "
        f"ratio of CPU per token {medians['cpu_ratio']:.2f}; idle RSS ostiary worker "
        f"{medians['ostiary_rss_idle_mib']:.0f} MiB, peer "
        f"{medians['peer_rss_idle_mib']:.0f} MiB"
    )
    return medians


def main() -> int:
    """Install the peer, run the rounds, print and save the results."""
    parser = argparse.ArgumentParser(description="Ostiary's token endpoint vs oidc-provider.")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured seconds before")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--server-cpu", default="0", help="the one CPU of each server")
    parser.add_argument("--wrk-cpu", default="1", help="the CPU of wrk")
    parser.add_argument("--peer-dir", type=Path, default=PEER, help="where the peer installs")
    parser.add_argument("--node", default=shutil.which("node") or "node")
    parser.add_argument("--npm", default=shutil.which("npm") or "npm")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    args = parser.parse_args()
    for tool in (args.wrk, args.node, args.npm, "taskset"):
        if shutil.which(tool) is None:
            console.print(f"[red]{tool} not found[/red] (wrk, node, npm and taskset are needed)")
            return 2
    args.peer_dir = args.peer_dir.resolve()
    install_peer(args.peer_dir, args.npm)
    # A SIGTERM to the benchmark still runs the ``finally`` blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="ostiary-token-peer-") as temp:
        for number in range(1, args.rounds + 1):
            ours = run_ostiary(args, Path(temp) / f"ostiary-{number}")
            theirs = run_peer(args, Path(temp) / f"peer-{number}")
            rounds.append(Round(ours, theirs))
            console.print(
                f"round {number}: ostiary {ours.tokens_per_second:,.0f} tok/s "
                f"(p50 {ours.p50_ms:.1f} p99 {ours.p99_ms:.1f} ms, "
                f"{ours.cpu_ms_per_token:.3f} CPU ms/tok, RSS idle {ours.rss_idle_mib:.0f} "
                f"after {ours.rss_after_mib:.0f} MiB, errors {ours.errors}) | oidc-provider "
                f"{theirs.tokens_per_second:,.0f} tok/s (p50 {theirs.p50_ms:.1f} p99 "
                f"{theirs.p99_ms:.1f} ms, {theirs.cpu_ms_per_token:.3f} CPU ms/tok, RSS idle "
                f"{theirs.rss_idle_mib:.0f} after {theirs.rss_after_mib:.0f} MiB, errors "
                f"{theirs.errors}) | ratio {rounds[-1].ratio:.2f}",
                highlight=False,
            )
    medians = show(rounds)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"token-peer-{started:%Y%m%dT%H%M%SZ}.json"
    report = {
        "started_at": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": {k: str(v) for k, v in vars(args).items()},
        "rounds": [{"ostiary": asdict(r.ostiary), "peer": asdict(r.peer)} for r in rounds],
        "medians": medians,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
