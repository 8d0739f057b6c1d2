"""Calling a ``certificate`` flow with outside clients (issue 10, point 4), on SQLite and
PostgreSQL: ``openssl req`` makes the CSR, the API signs it, then ``curl --cert --key`` and
httpx with a client certificate call the flow directly over ``ostiary serve
--tls-certfile/--tls-keyfile`` and through real nginx (``ssl_verify_client
optional_no_ca``). A revocation reaches a second ``ostiary serve`` on the same database
within 1 s; a client-certificate header from a peer that is no trusted proxy is refused and
audited.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.conftest import unavailable
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer
from tests.e2e.test_behind_nginx import _start_nginx
from tests.e2e.test_client_certificates import NGINX_TLS
from tests.tls_pki import issue

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
SUB = "/api/v1/subaccounts/acme"
FLOW = "/t/acme/http/orders"
T = TypeVar("T")


@dataclass
class Pki:
    """The server's TLS certificate (its own test CA) and the sender's key and CSR."""

    home: Path

    @property
    def ca(self) -> str:
        return str(self.home / "ca.pem")

    @property
    def server(self) -> tuple[str, str]:
        return str(self.home / "server.pem"), str(self.home / "server.key")

    @property
    def sender(self) -> tuple[str, str]:
        return str(self.home / "sender.pem"), str(self.home / "sender.key")

    def context(self, *, with_certificate: bool) -> ssl.SSLContext:
        """httpx's TLS context: trusting the server's CA, presenting the sender's certificate."""
        context = ssl.create_default_context(cafile=self.ca)
        if with_certificate:
            context.load_cert_chain(*self.sender)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    home = tmp_path / "pki"
    home.mkdir()
    ca = issue("Server Test CA", ca=True)
    (home / "ca.pem").write_text(ca.pem)
    issue("localhost", ca, server=True).write(home, "server")
    openssl = shutil.which("openssl") or unavailable("openssl")
    subprocess.run(
        [
            str(openssl),
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(home / "sender.key"),
            "-out",
            str(home / "sender.csr"),
            "-subj",
            "/CN=whatever-the-sender-asks",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Pki(home)


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``probe`` until it answers (waiting on state, never sleeping to order events)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out")


def _ok(answer: httpx.Response) -> dict[str, object]:
    assert answer.status_code in (200, 201), answer.text
    found: dict[str, object] = answer.json()
    return found


def prepare(api: httpx.Client, pki: Pki) -> str:
    """A sub-account with a certificate flow, a technical user holding the role, and the
    sender's CSR signed by the sub-account's CA (the certificate written next to its key)."""
    _ok(api.post("/api/v1/subaccounts", json={"subdomain": "acme", "display_name": "Acme"}))
    user = _ok(
        api.post("/api/v1/technical-users", json={"display_name": "sender", "subdomain": "acme"})
    )["user_id"]
    _ok(
        api.post(
            f"{SUB}/role-collections", json={"name": "Senders", "roles": ["ESBMessaging.send"]}
        )
    )
    _ok(api.put(f"{SUB}/users/{user}/role-collections", json={"role_collections": ["Senders"]}))
    _ok(api.post(f"{SUB}/flows", json={"path": "orders", "auth": ["certificate"]}))
    csr = (pki.home / "sender.csr").read_text()
    made = _ok(api.post(f"{SUB}/certificates", json={"user_id": user, "csr_pem": csr}))
    (pki.home / "sender.pem").write_text(str(made["certificate_pem"]))
    return str(made["certificate_id"])


def curl_post(url: str, pki: Pki, *, cacert: bool = True) -> tuple[int, str]:
    """``curl --cert --key`` POSTing a message; the HTTP status and body."""
    curl = shutil.which("curl") or unavailable("curl")
    cert, key = pki.sender
    done = subprocess.run(
        [
            str(curl),
            "-sS",
            *(["--cacert", pki.ca] if cacert else []),
            "--cert",
            cert,
            "--key",
            key,
            "-H",
            "Content-Type: application/xml",
            "--data-binary",
            "<order/>",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def status_of(url: str, pki: Pki) -> int:
    """A fresh connection (a new handshake) presenting the sender's certificate; 0 when the
    handshake refused it (no anchor vouches for it yet)."""
    with httpx.Client(verify=pki.context(with_certificate=True), timeout=10) as http:
        try:
            return http.post(url, content=b"<order/>").status_code
        except httpx.TransportError:
            return 0


def tls_server(start_server: StartServer, pki: Pki) -> Server:
    cert, key = pki.server
    server = start_server(args=["--tls-certfile", cert, "--tls-keyfile", key], ca=Path(pki.ca))
    server.wait_ready()
    return server


def test_direct_tls_admits_the_certificate_and_a_second_server_refuses_it_once_revoked(
    start_server: StartServer, pki: Pki
) -> None:
    first = tls_server(start_server, pki)
    with httpx.Client(base_url=first.url, auth=ADMIN, timeout=10, verify=first.verify) as api:
        certificate_id = prepare(api, pki)
        # The sub-account's CA (made at the first CSR) reaches the handshake's trust with
        # the next snapshot (one poll).
        wait_for(lambda: True if status_of(first.url + FLOW, pki) == 200 else None)
        status, body = curl_post(first.url + FLOW, pki)
        assert status == 200, body
        with httpx.Client(verify=pki.context(with_certificate=True), timeout=10) as http:
            answer = http.post(first.url + FLOW, content=b"<order/>")
        assert answer.status_code == 200, answer.text
        logged = _ok(api.get(f"{SUB}/messages", params={"flow": "orders"}))["items"]
        assert isinstance(logged, list) and len(logged) >= 3
        assert {(m["auth_method"], m["credential_id"]) for m in logged} == {
            ("certificate", certificate_id)
        }
        # Without a certificate: the same 401 as every authentication failure.
        with httpx.Client(verify=pki.context(with_certificate=False), timeout=10) as http:
            assert http.post(first.url + FLOW, content=b"<o/>").status_code == 401

        second = tls_server(start_server, pki)
        wait_for(lambda: True if status_of(second.url + FLOW, pki) == 200 else None)
        revoked_at = time.monotonic()
        _ok(api.post(f"{SUB}/certificates/{certificate_id}/revoke"))
        wait_for(lambda: True if status_of(second.url + FLOW, pki) == 401 else None)
        took = time.monotonic() - revoked_at
        assert took < 1.0, f"the revocation took {took:.2f}s to reach the second server"
        assert status_of(first.url + FLOW, pki) == 401

        def denial() -> str | None:
            events = _ok(api.get("/api/v1/audit-events", params={"action": "runtime:denied"}))[
                "items"
            ]
            assert isinstance(events, list)
            reasons = [str(e["detail"].get("reason", "")) for e in events]
            return next((r for r in reasons if r.startswith("certificate_revoked")), None)

        assert certificate_id in wait_for(denial)


@pytest.fixture
def behind_nginx(
    start_server: StartServer, pki: Pki, tmp_path: Path
) -> Iterator[tuple[Server, str]]:
    """``ostiary serve`` (plain HTTP) trusting 127.0.0.1 and nginx's header, behind nginx."""
    server = start_server(
        OSTIARY_TRUSTED_PROXIES="127.0.0.1/32", OSTIARY_CLIENT_CERT_HEADER="x-ssl-client-cert"
    )
    server.wait_ready()
    cert, key = pki.server
    process, url = _start_nginx(
        tmp_path / "nginx",
        server.url,
        NGINX_TLS,
        scheme="https",
        verify=pki.context(with_certificate=False),
        cert=cert,
        key=key,
    )
    try:
        yield server, url
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_through_nginx_the_certificate_calls_the_flow_and_forged_headers_are_refused(
    behind_nginx: tuple[Server, str], pki: Pki
) -> None:
    server, url = behind_nginx
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
        certificate_id = prepare(api, pki)
        status, body = curl_post(url + FLOW, pki)
        assert status == 200, body
        with httpx.Client(verify=pki.context(with_certificate=True), timeout=10) as http:
            assert http.post(url + FLOW, content=b"<order/>").status_code == 200
        logged = _ok(api.get(f"{SUB}/messages", params={"flow": "orders"}))["items"]
        assert isinstance(logged, list)
        assert {m["credential_id"] for m in logged} == {certificate_id}
        # The same header straight to Ostiary from an address that is no trusted proxy.
        forged = {"X-SSL-Client-Cert": (pki.home / "sender.pem").read_text().replace("\n", "%0A")}
        with httpx.Client(
            transport=httpx.HTTPTransport(local_address="127.0.0.4"), timeout=10
        ) as straight:
            assert (
                straight.post(server.url + FLOW, content=b"<o/>", headers=forged).status_code == 401
            )

        def denial() -> str | None:
            events = _ok(api.get("/api/v1/audit-events", params={"action": "runtime:denied"}))[
                "items"
            ]
            assert isinstance(events, list)
            return next(
                (
                    str(e["detail"]["reason"])
                    for e in events
                    if str(e["detail"].get("reason", "")).startswith("untrusted_peer_header")
                ),
                None,
            )

        assert "x-ssl-client-cert from 127.0.0.4" in wait_for(denial)
