"""Outside clients prove the OAuth endpoints: Authlib fetches tokens with all three client
authentication methods, PyJWT's ``PyJWKClient`` validates them from the discovery
document's ``jwks_uri``, and the token calls a flow — all against a real server."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from ostiary.cli.main import app
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server

pytestmark = pytest.mark.e2e
ADMIN = (ADMIN_EMAIL, ADMIN_PASSWORD)


def _prepare(server: Server, jwks: dict[str, object]) -> tuple[str, str, str]:
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=10) as api:
        assert (
            api.post(
                "/api/v1/subaccounts", json={"subdomain": "acme-oauth", "display_name": "O"}
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/subaccounts/acme-oauth/flows", json={"path": "orders", "auth": ["oauth"]}
            ).status_code
            == 201
        )
        assert (
            api.post(
                "/api/v1/subaccounts/acme-oauth/role-collections",
                json={"name": "Senders", "roles": ["ESBMessaging.send"]},
            ).status_code
            == 201
        )
        user = api.post("/api/v1/technical-users", json={"display_name": "bot"}).json()["user_id"]
        assert (
            api.put(
                f"/api/v1/subaccounts/acme-oauth/users/{user}/role-collections",
                json={"role_collections": ["Senders"]},
            ).status_code
            == 200
        )
        secret_client = api.post(
            "/api/v1/subaccounts/acme-oauth/oauth-clients", json={"user_id": user}
        ).json()
        key_client = api.post(
            "/api/v1/subaccounts/acme-oauth/oauth-clients", json={"user_id": user, "jwks": jwks}
        ).json()
    return secret_client["client_id"], secret_client["client_secret"], key_client["client_id"]


def test_authlib_tokens_validate_with_pyjwkclient_and_call_a_flow(server: Server) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": "k1", "alg": "ES256", "use": "sig"})
    client_id, secret, key_client_id = _prepare(server, {"keys": [public]})
    meta = httpx.get(f"{server.url}/.well-known/openid-configuration").json()
    token_url = meta["token_endpoint"]
    tokens = []
    for method in ("client_secret_basic", "client_secret_post"):
        with OAuth2Client(client_id, secret, token_endpoint_auth_method=method) as oauth:
            tokens.append(oauth.fetch_token(token_url, grant_type="client_credentials"))
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with OAuth2Client(
        key_client_id,
        ECKey.import_key(pem),  # Authlib reads a PEM string as RSA; EC goes in as a key
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256", headers={"kid": "k1"}),
    ) as oauth:
        tokens.append(oauth.fetch_token(token_url, grant_type="client_credentials"))

    jwks_client = jwt.PyJWKClient(meta["jwks_uri"])
    for token in tokens:
        access = token["access_token"]
        key = jwks_client.get_signing_key_from_jwt(access)
        claims = jwt.decode(
            access,
            key.key,
            algorithms=["ES256"],
            issuer=meta["issuer"],
            audience=f"{meta['issuer']}/t/acme-oauth",
        )
        assert claims["scope"] == "ESBMessaging.send"
        sent = httpx.post(
            f"{server.url}/t/acme-oauth/http/orders",
            content=b"<o/>",
            headers={"Authorization": f"Bearer {access}"},
        )
        assert sent.status_code == 200, sent.text
    with httpx.Client(base_url=server.url, auth=ADMIN) as api:
        mpl = api.get("/api/v1/subaccounts/acme-oauth/messages").json()["items"]
    assert {m["credential_id"] for m in mpl} == {client_id, key_client_id}
    assert {m["auth_method"] for m in mpl} == {"oauth"}

    # `ostiary token` fetches a token for scripts; it is the same kind of token.
    result = CliRunner().invoke(
        app,
        ["token", "--url", server.url, "--scope", "ESBMessaging.send"],
        env={"OSTIARY_CLIENT_ID": client_id, "OSTIARY_CLIENT_SECRET": secret},
    )
    assert result.exit_code == 0, result.output
    scripted = result.output.strip()
    assert jwt.decode(scripted, options={"verify_signature": False})["client_id"] == client_id
    sent = httpx.post(
        f"{server.url}/t/acme-oauth/http/orders",
        content=b"<o/>",
        headers={"Authorization": f"Bearer {scripted}"},
    )
    assert sent.status_code == 200, sent.text
    wrong = CliRunner().invoke(
        app,
        ["token", "--url", server.url],
        env={"OSTIARY_CLIENT_ID": client_id, "OSTIARY_CLIENT_SECRET": "wrong"},
    )
    assert wrong.exit_code == 1 and "invalid_client" in wrong.output
