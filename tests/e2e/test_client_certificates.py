"""Client certificates end to end: ``ostiary serve --tls-certfile`` as a real process, and real
nginx terminating TLS with ``ssl_verify_client optional_no_ca`` in front of the echo app
behind ``ProxyHeadersMiddleware``.

nginx is configured as README's *Behind nginx* says; the upstream is the echo app (plain
HTTP, in-process uvicorn) trusting 127.0.0.1 and reading ``X-SSL-Client-Cert``, so the test
sees exactly what the gate would: ``presented()``, ``ignored_header()``.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from ostiary.gate.client_cert_headers import NGINX
from ostiary.gate.proxies import ProxyHeadersMiddleware, TrustedProxies
from tests.conftest import unavailable
from tests.e2e.conftest import StartServer
from tests.e2e.test_behind_nginx import _start_nginx
from tests.tls_echo import as_json, echo, serving
from tests.tls_pki import Issued, issue

pytestmark = pytest.mark.e2e

NGINX_TLS = """\
daemon off;
master_process off;
pid {home}/nginx.pid;
error_log {home}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {home}/access.log;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"""


@dataclass
class Files:
    """The throwaway PKI on disk."""

    home: Path
    ca: Issued
    client: Issued

    @property
    def ca_file(self) -> str:
        return str(self.home / "ca.pem")

    def tls(self, who: Issued | None) -> ssl.SSLContext:
        """A client context trusting our CA, presenting ``who``'s certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if who is not None:
            context.load_cert_chain(*map(str, who.write(self.home, "client")))
        return context


@pytest.fixture
def files(tmp_path: Path) -> Files:
    home = tmp_path / "pki"
    home.mkdir()
    ca = issue("Acme Test CA", ca=True)
    (home / "ca.pem").write_text(ca.pem)
    issue("localhost", ca, server=True).write(home, "server")
    return Files(home, ca, issue("sender-1", ca))


# ---------------------------------------------------------------- ostiary serve, directly


def test_ostiary_serve_speaks_https_with_optional_client_certificates(
    start_server: StartServer, files: Files
) -> None:
    server = start_server(
        args=["--tls-certfile", str(files.home / "server.pem")],
        ca=files.home / "ca.pem",
        OSTIARY_TLS_KEYFILE=str(files.home / "server.key"),  # the setting works as well
    )
    server.wait_ready()  # over https, verifying our CA: no client certificate needed
    curl = shutil.which("curl") or unavailable("curl")
    done = subprocess.run(
        [str(curl), "-sS", "--cacert", files.ca_file, f"{server.url}/readyz"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Nothing is trusted yet (no sub-account has a CA, a trusted CA or a pin): a presented
    # certificate is refused in the handshake.
    with (
        httpx.Client(verify=files.tls(files.client), timeout=10) as http,
        pytest.raises(httpx.TransportError),
    ):
        http.get(f"{server.url}/readyz")
    # Plain HTTP on the TLS port is not served.
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https://", "http://") + "/readyz", timeout=5)


def test_ostiary_serve_refuses_to_start_with_an_unreadable_certificate(
    start_server: StartServer, tmp_path: Path
) -> None:
    (tmp_path / "broken.pem").write_text("not a certificate")
    server = start_server(args=["--tls-certfile", str(tmp_path / "broken.pem")])
    assert server.process.wait(timeout=60) == 2
    assert "TLS certificate or key" in server.stderr.read_text()


# ---------------------------------------------------------------- behind nginx


@pytest.fixture
def behind_nginx(files: Files, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """nginx (https) in front of the echo app trusting 127.0.0.1: both URLs."""
    trusting = ProxyHeadersMiddleware(
        echo, TrustedProxies([ipaddress.ip_network("127.0.0.1")]), cert_header=NGINX
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await trusting(scope, receive, send)

    with serving(app) as upstream:
        process, url = _start_nginx(
            tmp_path / "nginx",
            upstream,
            NGINX_TLS,
            scheme="https",
            verify=files.tls(None),
            cert=str(files.home / "server.pem"),
            key=str(files.home / "server.key"),
        )
        try:
            yield url, upstream
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_app_behind_nginx_receives_the_callers_certificate(
    behind_nginx: tuple[str, str], files: Files
) -> None:
    url, _ = behind_nginx
    curl = shutil.which("curl") or unavailable("curl")
    cert, key = files.client.write(files.home, "curl")
    done = subprocess.run(
        [str(curl), "-sS", "--cacert", files.ca_file, "--cert", str(cert), "--key", str(key), url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = as_json(done.stdout)
    assert answer["fingerprint"] == files.client.fingerprint
    assert answer["source"] == "proxy"
    assert answer["scheme"] == "https" and answer["ignored"] is None
    # optional_no_ca: nginx asks but does not judge; any certificate is passed on for the
    # gate to verify (here one from a CA nobody trusts).
    stranger = issue("sender-x", issue("Nobody's CA", ca=True))
    with httpx.Client(verify=files.tls(stranger), timeout=10) as http:
        assert as_json(http.get(url).text)["fingerprint"] == stranger.fingerprint
    with httpx.Client(verify=files.tls(None), timeout=10) as http:
        none = as_json(http.get(url).text)
    assert none["fingerprint"] is None and none["ignored"] is None


def test_a_forged_header_gets_no_certificate_through_nginx_or_around_it(
    behind_nginx: tuple[str, str], files: Files
) -> None:
    url, upstream = behind_nginx
    forged = {"X-SSL-Client-Cert": files.client.pem.replace("\n", "%0A")}
    # Through nginx without a certificate: proxy_set_header replaces the client's header
    # with nginx's empty value, which nginx does not send.
    with httpx.Client(verify=files.tls(None), timeout=10) as http:
        through = as_json(http.get(url, headers=forged).text)
        rfc9440 = as_json(http.get(url, headers={"Client-Cert": ":Zm9yZ2Vk:"}).text)
    assert through["fingerprint"] is None and through["ignored"] is None
    # A header nginx passes through untouched is never read, and named for the audit.
    assert rfc9440["fingerprint"] is None and rfc9440["ignored"] == "client-cert"
    # Straight to the app from an address that is no trusted proxy.
    with httpx.Client(
        transport=httpx.HTTPTransport(local_address="127.0.0.4"), timeout=10
    ) as straight:
        around = as_json(straight.get(upstream, headers=forged).text)
    assert around["client"] == "127.0.0.4"
    assert around["fingerprint"] is None and around["ignored"] == "x-ssl-client-cert"
