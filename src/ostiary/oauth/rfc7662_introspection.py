"""Token introspection, RFC 7662. A client learns about its own tokens only: any other
token, like an invalid, expired or revoked one, is ``{"active": false}`` (§2.2).

A certificate-bound token's answer carries its ``cnf`` (RFC 8705 §3.2: "the introspection
response … includes the ``cnf`` member … with the ``x5t#S256`` member"), so a resource
server that introspects can check the binding itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ostiary.access.snapshot import GrantSnapshot
from ostiary.oauth.client_auth import AuthenticatedClient
from ostiary.oauth.rfc9068_jwt import TokenValidator, presented_token


def introspect(
    snapshot: GrantSnapshot,
    validator: TokenValidator,
    *,
    client: AuthenticatedClient,
    form: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The introspection response for ``form["token"]``."""
    access = presented_token(validator, snapshot, form, client_id=client.client.client_id, now=now)
    owner = snapshot.clients.get(access.client_id) if access else None
    if access is None or owner is None or not owner.active:
        return {"active": False}
    answer: dict[str, Any] = {
        "active": True,
        "scope": " ".join(sorted(access.scope)),
        "client_id": access.client_id,
        "sub": access.subject,
        "aud": access.audience,
        "iss": access.claims["iss"],
        "exp": access.expires_at,
        "iat": access.claims["iat"],
        "nbf": access.issued_at,
        "jti": access.jti,
        "token_type": "Bearer",
    }
    if access.bound_to is not None:
        answer["cnf"] = access.claims["cnf"]
    return answer
