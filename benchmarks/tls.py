"""Client certificates over TLS (issue 10): the store-mode runtime with a certificate ÷ Basic.

One ``ostiary serve --workers 1 --tls-certfile … --tls-keyfile …`` on a fresh SQLite data
directory, pinned to ``--server-cpu``. Through the admin API: a sub-account, a store-mode
flow accepting ``basic`` and ``certificate``, a role collection with ``ESBMessaging.send``,
a technical user (generated secret) holding it, and a client certificate for that user
signed by the sub-account CA from a CSR made here. Then, one after the other, A B A B …:

- ``basic``: ``POST /t/bench/http/orders`` over TLS keep-alive with Basic and the secret;
- ``certificate``: the same request over TLS keep-alive connections that presented the
  client certificate, no ``Authorization`` header.

wrk cannot present client certificates, so the load comes from this script's own client
(``--client``: asyncio + uvloop, ``--connections`` keep-alive connections) pinned to
``--client-cpu``. The figure that counts is the server's own CPU time per answered
request (``/proc``), which does not depend on how fast the client is; req/s is printed
too. The goal: certificate ÷ basic ≥ 0.9 in requests per CPU second.

Then the handshake rate: ``openssl s_time -new`` (a full handshake per connection, no
session reuse) for ``--handshake-seconds``, without and with the client certificate.

Run with the project's virtualenv: ``.venv/bin/python benchmarks/tls.py``. Needs ``openssl``
and ``taskset``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rich.console import Console
from rich.table import Table

# benchmarks/runtime.py, beside this script (its directory is first on sys.path).
from runtime import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    HOST,
    PAYLOAD,
    SECRET_KEY,
    Child,
    basic,
    cpu_seconds,
    free_port,
    local_env,
)

HERE = Path(__file__).resolve().parent
SUBDOMAIN = "bench"
ORDERS = f"/t/{SUBDOMAIN}/http/orders"


# ---------------------------------------------------------------- throwaway server PKI


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def server_pki(home: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (ca, cert, key) files."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "benchmark server CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = home / "server-ca.pem", home / "server.pem", home / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(key))
    return paths


# ---------------------------------------------------------------- the server and its fixtures


def start_tls_server(home: Path, cpus: str, cert: Path, key: Path, ca: Path) -> tuple[Child, str]:
    """``ostiary serve --workers 1`` over TLS, pinned to ``cpus``; returns it and its URL."""
    port = free_port()
    url = f"https://{HOST}:{port}"
    env = local_env()
    env.update(
        OSTIARY_DATA_DIR=str(home / "data"),
        OSTIARY_SECRET_KEY=SECRET_KEY,
        OSTIARY_ADMIN_EMAIL=ADMIN_EMAIL,
        OSTIARY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OSTIARY_PUBLIC_URL=url,
        OSTIARY_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-c", "from ostiary.cli.main import run; run()", "serve"]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    command += ["--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    server = Child(["taskset", "--cpu-list", cpus, *command], env, home / "server.log")
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz", verify=str(ca), trust_env=False).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            server.stop()
            raise RuntimeError((home / "server.log").read_text(errors="replace")[-3000:])
        time.sleep(0.1)


def set_up(url: str, ca: Path, home: Path) -> tuple[str, Path, Path]:
    """The fixtures through the API; returns (Basic header, client cert file, key file)."""
    admin = {"Authorization": basic(ADMIN_EMAIL, ADMIN_PASSWORD)}
    with httpx.Client(
        base_url=f"{url}/api/v1", headers=admin, verify=str(ca), timeout=30, trust_env=False
    ) as api:

        def call(method: str, path: str, body: object) -> dict[str, object]:
            answer = api.request(method, path, json=body)
            if answer.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            return dict(answer.json())

        sub = f"/subaccounts/{SUBDOMAIN}"
        call("POST", "/subaccounts", {"subdomain": SUBDOMAIN, "display_name": "Benchmark"})
        flow = {"path": "orders", "mode": "store", "auth": ["basic", "certificate"]}
        call("POST", f"{sub}/flows", flow)
        call("POST", f"{sub}/role-collections", {"name": "Senders", "roles": ["ESBMessaging.send"]})
        made = call("POST", "/technical-users", {"display_name": "bench", "subdomain": SUBDOMAIN})
        sender, secret = str(made["user_id"]), str(made["password"])
        call("PUT", f"{sub}/users/{sender}/role-collections", {"role_collections": ["Senders"]})
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")]))
            .sign(key, hashes.SHA256())
        )
        csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        issued = call("POST", f"{sub}/certificates", {"user_id": sender, "csr_pem": csr_pem})
    cert_file, key_file = home / "client.pem", home / "client-key.pem"
    cert_file.write_text(str(issued["certificate_pem"]))
    key_file.write_bytes(_key_pem(key))
    return basic(sender, secret), cert_file, key_file


# ---------------------------------------------------------------- the load client


async def _load(
    url: str,
    ca: str,
    authorization: str | None,
    cert: str | None,
    key: str | None,
    connections: int,
    seconds: float,
) -> dict[str, float]:
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    body = PAYLOAD.encode()
    head = f"POST {ORDERS} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/xml\r\n"
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    counts = {"ok": 0, "other": 0}
    deadline = time.monotonic() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            counts["ok" if head.startswith(b"HTTP/1.1 2") else "other"] += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return {
        "requests": counts["ok"] + counts["other"],
        "errors": counts["other"],
        "seconds": elapsed,
    }


def client_main(argv: list[str]) -> None:
    """``--client``: run the load and print its counts as JSON (one child process)."""
    spec = json.loads(argv[0])
    import uvloop

    uvloop.install()
    print(json.dumps(asyncio.run(_load(**spec))))


@dataclass(frozen=True)
class Run:
    """One measured run of one scenario."""

    scenario: str
    requests_per_second: float
    server_cpu_ms_per_request: float
    requests: int
    errors: int


def measure(args: argparse.Namespace, server: Child, scenario: str, spec: dict[str, object]) -> Run:
    """A warm-up, then one measured load run against the server."""
    command = ["taskset", "--cpu-list", args.client_cpu, sys.executable, __file__, "--client"]
    warm = dict(spec, seconds=args.warmup)
    subprocess.run([*command, json.dumps(warm)], check=True, capture_output=True)
    before = cpu_seconds(server.process.pid)
    done = subprocess.run([*command, json.dumps(spec)], check=True, capture_output=True, text=True)
    cpu = cpu_seconds(server.process.pid) - before
    counts = json.loads(done.stdout)
    requests = int(counts["requests"])
    return Run(
        scenario,
        requests / counts["seconds"],
        cpu * 1000 / max(requests, 1),
        requests,
        int(counts["errors"]),
    )


def handshakes(
    args: argparse.Namespace, url: str, ca: Path, cert: Path | None, key: Path | None
) -> float:
    """Full TLS handshakes per second from ``openssl s_time -new``."""
    command = ["taskset", "--cpu-list", args.client_cpu, "openssl", "s_time", "-new"]
    command += ["-connect", url.removeprefix("https://"), "-CAfile", str(ca)]
    command += ["-time", str(args.handshake_seconds)]
    if cert is not None and key is not None:
        command += ["-cert", str(cert), "-key", str(key)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"([\d.]+) connections/user sec", output)
    if not found:
        raise RuntimeError(f"could not parse openssl s_time:\n{output}")
    # s_time divides by its own CPU time; connections in real seconds say more here.
    counted = re.search(r"(\d+) connections in (\d+) real seconds", output)
    if counted:
        return int(counted.group(1)) / max(int(counted.group(2)), 1)
    return float(found.group(1))


def main() -> int:
    """Run the rounds, print the table, write the JSON."""
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs")
    parser.add_argument("--duration", type=float, default=8, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--handshake-seconds", type=int, default=5)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as temp:
        home = Path(temp)
        ca, cert, key = server_pki(home)
        server, url = start_tls_server(home, args.server_cpu, cert, key, ca)
        try:
            authorization, client_cert, client_key = set_up(url, ca, home)
            common = {
                "url": url,
                "ca": str(ca),
                "connections": args.connections,
                "seconds": args.duration,
            }
            specs = {
                "basic": dict(common, authorization=authorization, cert=None, key=None),
                "certificate": dict(
                    common, authorization=None, cert=str(client_cert), key=str(client_key)
                ),
            }
            runs: list[Run] = []
            for number in range(1, args.rounds + 1):
                for scenario, spec in specs.items():
                    run = measure(args, server, scenario, spec)
                    runs.append(run)
                    console.print(
                        f"round {number} {scenario}: {run.requests_per_second:,.0f} req/s, "
                        f"{run.server_cpu_ms_per_request:.3f} server CPU ms/req, "
                        f"errors {run.errors}"
                    )
            rates = {
                "without client certificate": handshakes(args, url, ca, None, None),
                "with client certificate": handshakes(args, url, ca, client_cert, client_key),
            }
        finally:
            server.stop()
    cpu = {
        s: statistics.median(r.server_cpu_ms_per_request for r in runs if r.scenario == s)
        for s in specs
    }
    rps = {
        s: statistics.median(r.requests_per_second for r in runs if r.scenario == s) for s in specs
    }
    table = Table(title="store mode over TLS keep-alive, one worker pinned alone (medians)")
    for column in ("scenario", "req/s", "server CPU ms/req", "requests per CPU s"):
        table.add_column(column, justify="right")
    for s in specs:
        table.add_row(s, f"{rps[s]:,.0f}", f"{cpu[s]:.3f}", f"{1000 / cpu[s]:,.0f}")
    console.print(table)
    ratio = cpu["basic"] / cpu["certificate"]
    rps_ratio = rps["certificate"] / rps["basic"]
    met = "met" if ratio >= 0.9 else "MISSED"
    console.print(
        f"certificate ÷ basic: {ratio:.2f} in requests per server CPU second (goal ≥ 0.9: {met}),"
        f" {rps_ratio:.2f} in req/s"
    )
    for name, rate in rates.items():
        console.print(f"full TLS handshakes per second {name}: {rate:,.0f}")
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.output / f"tls-{stamp}.json"
    report = {
        "runs": [asdict(r) for r in runs],
        "ratio_cpu": ratio,
        "ratio_rps": rps_ratio,
        "handshakes_per_second": rates,
        "cpu_count": os.cpu_count(),
    }
    out.write_text(json.dumps(report, indent=2))
    console.print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
