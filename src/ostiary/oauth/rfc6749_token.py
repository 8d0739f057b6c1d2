"""The token endpoint, RFC 6749 §3.2 with the client credentials grant (§4.4).

The token's roles are those the client's technical user holds in the client's
sub-account; a requested ``scope`` (role names, §3.3) narrows them, and asking for a role
the user does not hold is ``invalid_scope``. Responses carry ``Cache-Control: no-store``
(§5.1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ostiary.access.snapshot import GrantSnapshot
from ostiary.identity.models import UserStatus
from ostiary.oauth import rfc9068_jwt
from ostiary.oauth.client_auth import AuthenticatedClient
from ostiary.oauth.errors import InvalidClient, InvalidRequest, InvalidScope, UnsupportedGrantType
from ostiary.oauth.keys import KeyRing


def check_grant(form: dict[str, str]) -> None:
    """Refuse anything but the client credentials grant, before authenticating."""
    grant = form.get("grant_type")
    if not grant:
        raise InvalidRequest("grant_type is required")
    if grant != "client_credentials":
        raise UnsupportedGrantType(
            f"grant_type {grant[:40]!r} is not supported; use client_credentials"
        )


def client_credentials(
    snapshot: GrantSnapshot,
    ring: KeyRing,
    *,
    client: AuthenticatedClient,
    issuer: str,
    lifetime: int,
    form: dict[str, str],
    now: datetime,
    cnf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The success body for an authenticated client, or raise an ``OAuthError``; ``cnf``
    binds the token to a client certificate (RFC 8705 §3.1)."""
    facts = client.client
    user = snapshot.users.get(facts.user_id)
    if user is None or user.status is not UserStatus.active:
        raise InvalidClient(
            "client authentication failed", reason=f"technical user {facts.user_id} is not active"
        )
    grants = snapshot.grants(user_id=facts.user_id, subdomain=facts.subdomain)
    held = set(grants.roles) if grants else set()
    requested = form.get("scope", "").split()
    if requested:
        missing = sorted(set(requested) - held)
        if missing:
            raise InvalidScope(f"the client may not have: {' '.join(missing)}")
        scope = sorted(set(requested))
    else:
        scope = sorted(held)
    token, _ = rfc9068_jwt.issue(
        snapshot,
        ring,
        issuer=issuer,
        subdomain=facts.subdomain,
        user_id=facts.user_id,
        client_id=facts.client_id,
        scope=scope,
        now=now,
        lifetime=lifetime,
        cnf=cnf,
    )
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(scope),
    }
