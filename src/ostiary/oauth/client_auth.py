"""Client authentication at the token, introspection and revocation endpoints.

RFC 6749 §2.3.1: ``client_secret_basic`` (client ID and secret form-urlencoded, then
Basic) and ``client_secret_post``; RFC 7523 §2.2 / RFC 7521 §4.2: ``private_key_jwt``, a
JWT signed by the client's registered key with ``iss`` = ``sub`` = client ID, ``aud`` the
token endpoint (or the issuer), ``exp`` and a ``jti`` not seen before; RFC 8705 §2:
``tls_client_auth`` and ``self_signed_tls_client_auth``, a ``client_id`` alone in the form
naming a client registered for one of them, proved by the TLS client certificate
(``ostiary.oauth.rfc8705_mtls``). Exactly one method per request; every failure is the
same ``invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

import anyio.to_thread
import httpx
import jwt

from ostiary.access.snapshot import ClientFacts, GrantSnapshot
from ostiary.context import AppContext
from ostiary.credentials.naming import client_key_id
from ostiary.crypto import constant_time_equals
from ostiary.gate.client_certs import PresentedCertificate
from ostiary.gate.credentials import client_refusal, expiry_refusal
from ostiary.gate.replay import ReplayStore
from ostiary.oauth import rfc8705_mtls
from ostiary.oauth.errors import InvalidClient, InvalidRequest
from ostiary.oauth.models import AuthMethod

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: A client's published JWK set is small; anything larger is refused, not parsed.
MAX_JWKS_BYTES = 64 * 1024
ASSERTION_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]


@dataclass(frozen=True)
class AuthenticatedClient:
    """A client that proved who it is, and how."""

    client: ClientFacts
    method: str
    #: The credential it proved itself with (a secret, a key; mTLS: the client), for last use.
    credential_id: str = ""


def _basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClient("client authentication failed", reason="malformed basic") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("client authentication failed", reason="malformed basic")
    return unquote_plus(client_id), unquote_plus(secret)


class ClientAuthenticator:
    """Authenticates clients from the grants snapshot (no query per request)."""

    def __init__(
        self, ctx: AppContext, *, token_endpoint: str, issuer: str, http: httpx.AsyncClient
    ) -> None:
        self._ctx = ctx
        self._audiences = {token_endpoint, issuer}
        self._http = http
        self._replay = ReplayStore(ctx.sessions)
        self._jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def authenticate(
        self,
        snapshot: GrantSnapshot,
        *,
        header: str,
        form: dict[str, str],
        now: datetime,
        certificate: PresentedCertificate | None = None,
    ) -> AuthenticatedClient:
        """The client behind the request, or ``InvalidClient``/``InvalidRequest``;
        ``certificate`` is the TLS client certificate presented with it, if any."""
        methods = []
        if header.lower().startswith("basic "):
            methods.append("client_secret_basic")
        if "client_secret" in form:
            methods.append("client_secret_post")
        if "client_assertion" in form or "client_assertion_type" in form:
            methods.append("private_key_jwt")
        if len(methods) > 1:
            raise InvalidRequest("use exactly one client authentication method")
        if not methods:
            client, mtls = self._mutual_tls(snapshot, form, certificate, now)
            return AuthenticatedClient(client, mtls, client.client_id)
        method = methods[0]
        if method == "private_key_jwt":
            client, credential_id = await self._assertion(snapshot, form, now)
        else:
            if method == "client_secret_basic":
                client_id, secret = _basic(header)
            else:
                client_id, secret = form.get("client_id", ""), form["client_secret"]
            client, credential_id = self._secret(snapshot, client_id, secret, now)
        if form.get("client_id") and form["client_id"] != client.client_id:
            raise InvalidClient("client authentication failed", reason="client_id mismatch")
        return AuthenticatedClient(client, method, credential_id)

    def _mutual_tls(
        self,
        snapshot: GrantSnapshot,
        form: dict[str, str],
        certificate: PresentedCertificate | None,
        now: datetime,
    ) -> tuple[ClientFacts, str]:
        """RFC 8705 §2: the ``client_id`` names the client, the certificate proves it."""
        client_id = form.get("client_id", "")
        client = snapshot.clients.get(client_id) if client_id else None
        if client is None or client.mtls_method is None:
            reason = "no credentials" if client is None else "client_id without credentials"
            raise InvalidClient("client authentication is required", reason=reason)
        method = client.mtls_method
        client = self._usable(snapshot, client_id, now)
        if method == AuthMethod.self_signed_tls_client_auth:
            rfc8705_mtls.self_signed_tls_client_auth(
                certificate, pinned_fingerprint=client.certificate_fingerprint or "", at=now
            )
        else:
            # §2.1: the sub-account's own CAs (a retired one in its overlap too) and the
            # external CAs it trusts; a certificate revoked there authenticates nothing.
            known = snapshot.certificates
            trust = known.trust.get(client.subdomain)
            anchors = (*trust.ca_anchors(at=now), *trust.external_anchors()) if trust else ()

            def revoked(fingerprint: str) -> bool:
                found = known.certificate(fingerprint, client.subdomain)
                return found is not None and found.status == "revoked"

            rfc8705_mtls.tls_client_auth(
                certificate,
                subject_dn=client.subject_dn or "",
                anchors=anchors,
                revoked=revoked,
                at=now,
            )
        return client, method

    def _usable(self, snapshot: GrantSnapshot, client_id: str, now: datetime) -> ClientFacts:
        client = snapshot.clients.get(client_id)
        refused = client_refusal(snapshot, client, now, named=client_id)
        if refused is not None:
            raise InvalidClient(
                "client authentication failed",
                reason=refused.reason,
                expired_credential=refused.expired_credential,
            )
        assert client is not None
        return client

    def _secret(
        self, snapshot: GrantSnapshot, client_id: str, secret: str, now: datetime
    ) -> tuple[ClientFacts, str]:
        """The client whose secret this is, and the secret's credential ID."""
        digest = self._ctx.secret_hasher.hash(secret)  # also for unknown clients: same cost
        client = snapshot.clients.get(client_id)
        if client is None:
            raise InvalidClient("client authentication failed", reason="unknown client")
        if client.mtls_method is not None:
            raise InvalidClient(
                "client authentication failed",
                reason=f"a secret for a {client.mtls_method} client (it has none)",
            )
        matched: int | None = None
        for index, (stored, _) in enumerate(client.secrets):  # each compared, constant time
            if constant_time_equals(digest, stored):
                matched = index
        if matched is None:
            raise InvalidClient("client authentication failed", reason="wrong secret")
        ids = client.secret_ids
        credential_id = ids[matched] if matched < len(ids) else client_id
        expired = expiry_refusal(
            credential_id, client.secrets[matched][1], now, user_id=client.user_id
        )
        if expired is not None:  # the same "credential expired" as every entry point's
            raise InvalidClient(
                "client authentication failed",
                reason=expired.reason,
                expired_credential=expired.expired_credential,
            )
        return self._usable(snapshot, client_id, now), credential_id

    async def _assertion(
        self, snapshot: GrantSnapshot, form: dict[str, str], now: datetime
    ) -> tuple[ClientFacts, str]:
        """The client that signed the assertion, and the key's credential ID."""
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form["client_assertion"]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise InvalidClient(
                "client authentication failed", reason="malformed assertion"
            ) from exc
        client_id = str(unverified.get("iss", ""))
        client = self._usable(snapshot, client_id, now)
        if header.get("alg") not in ASSERTION_ALGORITHMS:
            raise InvalidClient(
                "client authentication failed",
                reason=f"assertion alg {header.get('alg')!r} refused",
            )
        key, kid = await self._client_key(client, header.get("kid"))
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=ASSERTION_ALGORITHMS,
                audience=list(self._audiences),
                issuer=client_id,
                options={
                    "require": ["exp", "iss", "sub", "aud", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidClient(
                "client authentication failed", reason=f"assertion: {type(exc).__name__}"
            ) from exc
        credential_id = client_key_id(client_id, kid)
        expired = expiry_refusal(
            credential_id, dict(client.key_expiry).get(kid), now, user_id=client.user_id
        )
        if expired is not None:  # signed by a key whose overlap has ended
            raise InvalidClient(
                "client authentication failed",
                reason=expired.reason,
                expired_credential=expired.expired_credential,
            )
        stamp = now.timestamp()
        if claims["sub"] != client_id:
            raise InvalidClient("client authentication failed", reason="sub is not client_id")
        exp = claims["exp"]
        if (
            isinstance(exp, bool)
            or not isinstance(exp, int | float)
            or not math.isfinite(exp)
            or exp <= stamp
            or exp > stamp + 3600
        ):
            raise InvalidClient("client authentication failed", reason="assertion expired")
        first = await anyio.to_thread.run_sync(
            partial(
                self._replay.first_use,
                client_id=client_id,
                jti=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
                now=now,
            )
        )
        if not first:
            raise InvalidClient("client authentication failed", reason="assertion replayed")
        return client, credential_id

    async def _client_key(self, client: ClientFacts, kid: object) -> tuple[Any, str]:
        """The public key the assertion names, and its ``kid`` (``#n``: by position)."""
        jwks = client.jwks
        if jwks is None and client.jwks_uri:
            jwks = await self._fetch_jwks(client.jwks_uri)
        keys = [
            (k, str(k.get("kid") or f"#{index}"))
            for index, k in enumerate((jwks or {}).get("keys", []))
            if isinstance(k, dict)
        ]
        if kid is not None:
            keys = [(k, name) for k, name in keys if k.get("kid") == kid]
        if not keys:
            raise InvalidClient("client authentication failed", reason="no matching client key")
        try:
            return jwt.PyJWK(keys[0][0]).key, keys[0][1]
        except jwt.PyJWTError as exc:
            raise InvalidClient(
                "client authentication failed", reason="unusable client key"
            ) from exc

    async def _fetch_jwks(self, uri: str) -> dict[str, Any]:
        cached = self._jwks_cache.get(uri)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            answer = await self._http.get(uri, timeout=5)
            answer.raise_for_status()
            if len(answer.content) > MAX_JWKS_BYTES:
                raise ValueError("jwks too large")
            jwks = json.loads(answer.content)
            if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                raise ValueError("not a JWK set")
        except (httpx.HTTPError, ValueError) as exc:
            raise InvalidClient(
                "client authentication failed", reason="jwks_uri unreachable"
            ) from exc
        self._jwks_cache[uri] = (time.monotonic() + 300, jwks)
        return jwks
