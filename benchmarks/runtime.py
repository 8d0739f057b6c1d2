"""Runtime endpoint benchmark (issue 4): ``ostiary serve`` driven by ``wrk``, side by side.

For each worker count it starts a fresh server on a temporary SQLite data directory, sets
up a sub-account, two flows, a role collection and a technical user through the API, then
measures with ``wrk --latency``:

- ``bare``: ``GET /healthz``, unauthenticated: the yardstick for every ratio;
- ``me``: ``GET /api/v1/me`` with Basic (authentication alone; argon2, cached);
- ``store-secret``: the runtime in store mode, Basic with a generated secret;
- ``store-argon2``: the same with the administrator's argon2 password (cached);
- ``forward``: forward mode to a local receiver (``benchmarks/receiver.py``).

Every request goes to 127.0.0.1; each wrk run is bounded by ``--duration``; the servers and
the receiver are stopped at the end whatever happens. Needs ``wrk`` (``apt-get install
wrk``). Results: a table on the terminal and ``benchmarks/results/runtime-<time>.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SECRET_KEY = "benchmark-secret-key-0c5e91d2a7"
ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "Bench-admin-passw0rd-5512"
SUBDOMAIN = "bench"
PAYLOAD = '<order id="42"><item sku="A-1" quantity="3"/></order>'
STOP_TIMEOUT = 10.0
# Wide enough for the table when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 110)


@dataclass(frozen=True)
class Scenario:
    """One wrk run: a request and what to call it."""

    name: str
    label: str
    method: str
    path: str
    authorization: str | None = None
    body: str | None = None
    content_type: str = "application/xml"


@dataclass(frozen=True)
class Result:
    """What wrk measured for one scenario at one worker count."""

    scenario: str
    label: str
    workers: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    ratio_to_bare: float
    server_cpu_ms_per_request: float
    load_average_before: float


class Child:
    """A child process in its own session, its output in a file; ``stop`` always ends it."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL the child's process group (its uvicorn workers)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        # Workers that outlived their supervisor share its process group: ours alone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def wait_ready(self, url: str, timeout: float = 30.0) -> None:
        """Poll ``url`` until it answers 200; fail with the child's output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{url} did not come up:\n{tail}")


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def basic(user: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of process ``root`` and its descendants, from /proc."""
    total, todo, tick = 0.0, [root], os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
    return total


def local_env() -> dict[str, str]:
    """This environment without ``OSTIARY_*`` and proxy settings: all traffic stays local."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OSTIARY_") and not k.lower().endswith("_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
    return env


def start_server(
    workers: int, home: Path, log_level: str, *, cpus: str | None = None
) -> tuple[Child, str]:
    """``ostiary serve`` on a fresh SQLite data directory; returns it and its base URL.

    ``cpus`` (a ``taskset`` list such as ``"0"``) pins the server and its workers there."""
    port = free_port()
    env = local_env()
    env.update(
        OSTIARY_DATA_DIR=str(home / "data"),
        OSTIARY_SECRET_KEY=SECRET_KEY,
        OSTIARY_ADMIN_EMAIL=ADMIN_EMAIL,
        OSTIARY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OSTIARY_PUBLIC_URL=f"http://{HOST}:{port}",
        OSTIARY_LOG_LEVEL=log_level,
    )
    script = Path(sys.executable).parent / "ostiary"
    entry = [sys.executable, "-c", "from ostiary.cli.main import run; run()"]
    command = [str(script)] if script.exists() else entry
    command += ["serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    if cpus is not None:  # taskset execs the command: the child's pid stays the server's
        command = ["taskset", "--cpu-list", cpus, *command]
    server = Child(command, env, home / "server.log")
    url = f"http://{HOST}:{port}"
    try:
        server.wait_ready(f"{url}/readyz")
    except BaseException:
        server.stop()
        raise
    return server, url


def set_up(url: str, receiver: str) -> list[Scenario]:
    """Create the fixtures through the API; return the scenarios that use them."""
    admin = {"Authorization": basic(ADMIN_EMAIL, ADMIN_PASSWORD)}
    api = f"{url}/api/v1"
    with httpx.Client(timeout=30.0, headers=admin, trust_env=False) as client:

        def call(method: str, path: str, body: object | None = None) -> dict[str, object]:
            answer = client.request(method, f"{api}{path}", json=body)
            if answer.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            return dict(answer.json())

        admin_id = str(call("GET", "/me")["user_id"])
        sub = f"/subaccounts/{SUBDOMAIN}"
        subaccount = {"subdomain": SUBDOMAIN, "display_name": "Benchmark", "plan": "standard"}
        call("POST", "/subaccounts", subaccount)
        call(
            "POST", f"{sub}/flows", {"path": "orders", "mode": "store", "auth": ["basic", "oauth"]}
        )
        forward = {"path": "relay", "mode": "forward", "receiver_url": f"{receiver}/in"}
        call("POST", f"{sub}/flows", forward)
        call("POST", f"{sub}/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]})
        made = call("POST", "/technical-users", {"display_name": "bench", "subdomain": SUBDOMAIN})
        sender, secret = str(made["user_id"]), str(made["password"])
        senders = {"role_collections": ["Senders"]}
        for user_id in (sender, admin_id):
            call("PUT", f"{sub}/users/{user_id}/role-collections", senders)
        oauth = call("POST", f"{sub}/oauth-clients", {"user_id": sender})
        client_auth = basic(str(oauth["client_id"]), str(oauth["client_secret"]))
        token = client.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": client_auth},
        )
        if token.status_code != 200:
            raise RuntimeError(f"/oauth/token: {token.status_code} {token.text}")
        bearer = f"Bearer {token.json()['access_token']}"
    orders, relay = f"/t/{SUBDOMAIN}/http/orders", f"/t/{SUBDOMAIN}/http/relay"
    by_secret, by_argon2 = basic(sender, secret), basic(admin_id, ADMIN_PASSWORD)
    return [
        Scenario("bare", "GET /healthz, no auth", "GET", "/healthz"),
        Scenario("me", "GET /api/v1/me, argon2 cached", "GET", "/api/v1/me", by_argon2),
        Scenario("store-secret", "store, generated secret", "POST", orders, by_secret, PAYLOAD),
        Scenario("store-argon2", "store, argon2 cached", "POST", orders, by_argon2, PAYLOAD),
        Scenario("forward", "forward, generated secret", "POST", relay, by_secret, PAYLOAD),
        Scenario(
            "token",
            "POST /oauth/token, client_secret_basic",
            "POST",
            "/oauth/token",
            client_auth,
            "grant_type=client_credentials",
            "application/x-www-form-urlencoded",
        ),
        Scenario("store-bearer", "store, bearer JWT", "POST", orders, bearer, PAYLOAD),
    ]


def lua(scenario: Scenario) -> str:
    """A wrk script that sets the method, body and headers (JSON strings are Lua strings)."""
    lines = [f"wrk.method = {json.dumps(scenario.method)}"]
    if scenario.body is not None:
        lines.append(f"wrk.body = {json.dumps(scenario.body)}")
        lines.append(f'wrk.headers["Content-Type"] = {json.dumps(scenario.content_type)}')
    if scenario.authorization is not None:
        lines.append(f'wrk.headers["Authorization"] = {json.dumps(scenario.authorization)}')
    return "\n".join(lines) + "\n"


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not found:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(found.group(1)) * UNITS_MS[found.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/sec, p50/p99 (ms), request count and error counts from ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    count = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and count):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "requests": int(count.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


def run_wrk(
    url: str, scenario: Scenario, args: argparse.Namespace, scripts: Path, duration: int
) -> dict[str, float]:
    """One bounded wrk run against ``url``."""
    script = scripts / f"{scenario.name}.lua"
    script.write_text(lua(scenario))
    command = [
        args.wrk,
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={duration}s",  # wrk takes whole seconds only
        "--timeout=5s",
        "--latency",
        f"--script={script}",
        f"{url}{scenario.path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    return parse_wrk(done.stdout)


def measure(workers: int, receiver: str, args: argparse.Namespace, home: Path) -> list[Result]:
    """Start a server with ``workers`` workers, run every scenario, stop the server."""
    home.mkdir()
    server, url = start_server(workers, home, args.log_level)
    try:
        scenarios = set_up(url, receiver)
        results: list[Result] = []
        bare = 0.0
        for scenario in scenarios:
            console.print(f"  {workers} worker(s): {scenario.label} …")
            if args.warmup > 0:  # fills per-worker caches and connection pools
                run_wrk(url, scenario, args, home, args.warmup)
            load = os.getloadavg()[0]
            cpu = cpu_seconds(server.process.pid)
            got = run_wrk(url, scenario, args, home, args.duration)
            cpu = cpu_seconds(server.process.pid) - cpu
            bare = bare or got["rps"]
            results.append(
                Result(
                    scenario=scenario.name,
                    label=scenario.label,
                    workers=workers,
                    requests_per_second=got["rps"],
                    p50_ms=got["p50"],
                    p99_ms=got["p99"],
                    requests=int(got["requests"]),
                    non_2xx=int(got["non_2xx"]),
                    socket_errors=int(got["socket_errors"]),
                    ratio_to_bare=got["rps"] / bare if bare else 0.0,
                    server_cpu_ms_per_request=cpu * 1000 / max(got["requests"], 1),
                    load_average_before=load,
                )
            )
        return results
    finally:
        server.stop()


def goals(results: list[Result]) -> dict[str, dict[str, float]]:
    """Goals per worker count: store/bare ≥ 0.5 and argon2 within 10 % of secret (issue 4);
    token/bare ≥ 0.25 and bearer within 10 % of secret (issue 5)."""
    out: dict[str, dict[str, float]] = {}
    for workers in sorted({r.workers for r in results}):
        by = {r.scenario: r.requests_per_second for r in results if r.workers == workers}
        out[str(workers)] = {
            "store_secret_to_bare": by["store-secret"] / by["bare"],
            "store_argon2_to_store_secret": by["store-argon2"] / by["store-secret"],
            "token_to_bare": by["token"] / by["bare"],
            "store_bearer_to_store_secret": by["store-bearer"] / by["store-secret"],
        }
    return out


def show(results: list[Result], met: dict[str, dict[str, float]]) -> None:
    """Print the results table and the goals."""
    table = Table(title="Ostiary runtime benchmark (SQLite, wrk on 127.0.0.1)")
    columns = ("workers", "scenario", "req/s", "p50 ms", "p99 ms", "ratio", "CPU ms/req", "errors")
    for column in columns:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    last = None
    for r in results:
        if last is not None and r.workers != last:
            table.add_section()
        last = r.workers
        table.add_row(
            str(r.workers),
            r.label,
            f"{r.requests_per_second:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.ratio_to_bare:.2f}",
            f"{r.server_cpu_ms_per_request:.3f}",
            str(r.non_2xx + r.socket_errors),
        )
    console.print(table)
    console.print(
        "CPU ms/req: the server's CPU time (all workers) per answered request; it holds "
        "steadier than req/s when other work shares the machine."
    )
    checks = [  # (key, label, goal): issue 4's and issue 5's goals, side by side
        ("store_secret_to_bare", "store/bare", 0.5),
        ("store_argon2_to_store_secret", "argon2/secret", 0.9),
        ("token_to_bare", "token/bare", 0.25),
        ("store_bearer_to_store_secret", "bearer/secret", 0.9),
    ]
    for workers, ratios in met.items():
        parts = [
            f"{label} = {ratios[key]:.2f} (goal ≥ {goal:.2f}: "
            f"{'met' if ratios[key] >= goal else 'MISSED'})"
            for key, label, goal in checks
        ]
        console.print(f"{workers} worker(s): " + ", ".join(parts))


def main() -> int:
    """Parse options, run every worker count, print and save the results."""
    parser = argparse.ArgumentParser(description="Benchmark the runtime endpoint with wrk.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    parser.add_argument("--log-level", default="WARNING", help="the server's OSTIARY_LOG_LEVEL")
    args = parser.parse_args()
    if shutil.which(args.wrk) is None:
        console.print("[red]wrk not found[/red]: apt-get install wrk")
        return 2
    # A SIGTERM to the benchmark still runs the ``finally`` blocks that stop the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="ostiary-bench-") as temp:
        port = free_port()
        receiver = Child(
            [sys.executable, str(HERE / "receiver.py"), "--port", str(port)],
            local_env(),
            Path(temp) / "receiver.log",
        )
        try:
            receiver_url = f"http://{HOST}:{port}"
            receiver.wait_ready(f"{receiver_url}/ready")
            for workers in args.workers:
                results += measure(workers, receiver_url, args, Path(temp) / f"w{workers}")
        finally:
            receiver.stop()
    met = goals(results)
    show(results, met)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"runtime-{started:%Y%m%dT%H%M%SZ}.json"
    report = {
        "started_at": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": {
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            "log_level": args.log_level,
        },
        "results": [asdict(r) for r in results],
        "goals": met,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
