"""RFC 8705 end to end, over real TLS: ``ostiary serve --tls-certfile --tls-keyfile`` as a
process, ``openssl req`` makes the CSR the sub-account CA signs, Authlib's ``OAuth2Client``
(httpx) presents the certificate and obtains a token with ``tls_client_auth``, PyJWT reads
its ``cnf``, and the bound token calls a flow with its certificate (200) and without (401).

The handshake accepts the certificate because the worker's TLS anchors come from its
grants snapshot (certs-gate); trust changes reach new connections within a poll, so the
first mTLS connection is retried until the new certificate is trusted.
"""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.conftest import unavailable
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server, StartServer
from tests.tls_pki import issue

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)
SD = "acme-mtls"


def openssl(*args: str, cwd: Path) -> str:
    tool = shutil.which("openssl") or unavailable("openssl")
    done = subprocess.run(
        [str(tool), *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the server's CA, presenting ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def signed_certificate(api: httpx.Client, user: str, home: Path, name: str) -> Path:
    """``openssl req`` makes a key and CSR; the sub-account CA signs it through the API."""
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=home,
    )  # fmt: skip
    answer = api.post(
        f"/api/v1/subaccounts/{SD}/certificates",
        json={"user_id": user, "csr_pem": (home / f"{name}.csr").read_text()},
    )
    assert answer.status_code == 201, answer.text
    (home / f"{name}.pem").write_text(answer.json()["certificate_pem"])
    return home / f"{name}.pem"


def prepare(server: Server, ca: Path) -> tuple[str, str]:
    """A sub-account with an oauth flow and a technical user holding its role."""
    with httpx.Client(base_url=server.url, auth=ADMIN, verify=tls(ca), timeout=10) as api:
        steps = [
            ("/api/v1/subaccounts", {"subdomain": SD, "display_name": "mTLS"}),
            (f"/api/v1/subaccounts/{SD}/flows", {"path": "orders", "auth": ["oauth"]}),
            (
                f"/api/v1/subaccounts/{SD}/role-collections",
                {"name": "Senders", "roles": ["ESBMessaging.send"]},
            ),
        ]
        for path, body in steps:
            assert api.post(path, json=body).status_code == 201
        user = api.post("/api/v1/technical-users", json={"display_name": "bot"}).json()["user_id"]
        assigned = api.put(
            f"/api/v1/subaccounts/{SD}/users/{user}/role-collections",
            json={"role_collections": ["Senders"]},
        )
        assert assigned.status_code == 200
    return server.url, user


def trusted_soon(url: str, context: ssl.SSLContext) -> None:
    """Wait until the handshake accepts the certificate (the trust reached the worker)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with httpx.Client(verify=context, timeout=5) as http:
                http.get(f"{url}/readyz")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_authlib_gets_a_certificate_bound_token_with_tls_client_auth(
    start_server: StartServer, tmp_path: Path
) -> None:
    home = tmp_path / "pki"
    home.mkdir()
    server_ca = issue("Acme Test CA", ca=True)
    (home / "ca.pem").write_text(server_ca.pem)
    certfile, keyfile = issue("localhost", server_ca, server=True).write(home, "server")
    ca = home / "ca.pem"
    server = start_server(
        args=["--tls-certfile", str(certfile), "--tls-keyfile", str(keyfile)], ca=ca
    )
    server.wait_ready()
    url, user = prepare(server, ca)
    with httpx.Client(base_url=url, auth=ADMIN, verify=tls(ca), timeout=10) as api:
        mine = signed_certificate(api, user, home, "sender")
        other = signed_certificate(api, user, home, "spare")
        subject = openssl(
            "x509", "-in", str(mine), "-noout", "-subject", "-nameopt", "RFC2253", cwd=home
        )
        subject_dn = subject.strip().removeprefix("subject=").strip()
        made = api.post(
            f"/api/v1/subaccounts/{SD}/oauth-clients",
            json={
                "user_id": user,
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": subject_dn,
            },
        )
        assert made.status_code == 201, made.text
        client_id = made.json()["client_id"]
        assert made.json()["client_secret"] is None
    with_cert = tls(ca, mine, home / "sender.key")
    trusted_soon(url, with_cert)
    meta = httpx.get(f"{url}/.well-known/oauth-authorization-server", verify=tls(ca)).json()
    assert "tls_client_auth" in meta["token_endpoint_auth_methods_supported"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    # RFC 8705 §2: client_id in the body, no secret; Authlib's "none" sends just that.
    with OAuth2Client(client_id, token_endpoint_auth_method="none", verify=with_cert) as oauth:
        token = oauth.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    access = token["access_token"]
    jwks = httpx.get(meta["jwks_uri"], verify=tls(ca)).json()
    claims = jwt.decode(
        access,
        jwt.PyJWK(jwks["keys"][0]).key,
        algorithms=["ES256"],
        audience=f"{url}/t/{SD}",
        issuer=url,
    )
    der_hex = (
        openssl("x509", "-in", str(mine), "-noout", "-fingerprint", "-sha256", cwd=home)
        .strip()
        .split("=", 1)[1]
        .replace(":", "")
    )
    thumbprint = base64.urlsafe_b64encode(bytes.fromhex(der_hex)).rstrip(b"=").decode()
    assert claims["cnf"] == {"x5t#S256": thumbprint}
    flow = f"{url}/t/{SD}/http/orders"
    bearer = {"Authorization": f"Bearer {access}"}
    with httpx.Client(verify=with_cert, timeout=10) as http:
        assert http.post(flow, content=b"<o/>", headers=bearer).status_code == 200
    with httpx.Client(verify=tls(ca), timeout=10) as http:  # no client certificate
        refused = http.post(flow, content=b"<o/>", headers=bearer)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    spare = tls(ca, other, home / "spare.key")
    trusted_soon(url, spare)
    with httpx.Client(verify=spare, timeout=10) as http:  # another trusted certificate
        assert http.post(flow, content=b"<o/>", headers=bearer).status_code == 401
    # Without a certificate at the token endpoint, the mTLS client is not authenticated.
    with httpx.Client(verify=tls(ca), timeout=10) as http:
        answer = http.post(
            meta["token_endpoint"],
            data={"grant_type": "client_credentials", "client_id": client_id},
        )
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
