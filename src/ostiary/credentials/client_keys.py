"""Client keys for ``private_key_jwt`` (RFC 7523): overlap rotation of a client's JWK set.

A new public key joins the registered set; the keys before it keep working until
``old_valid_until`` (``credentials.rotation.check_overlap``, the same limits as secrets),
and keys past their end leave the set at the next rotation. Each key's validity and last
use is a ``ClientKey`` row beside the set, made when the client is created or rotated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import as_utc
from ostiary.context import AppContext
from ostiary.credentials.models import ClientKey
from ostiary.credentials.naming import client_key_id
from ostiary.credentials.rotation import check_overlap
from ostiary.errors import InvalidInput
from ostiary.oauth.models import OAuthClient
from ostiary.tenancy.models import Subaccount

MAX_KEYS = 10


@dataclass(frozen=True)
class RotatedKey:
    """The new key's credential ID, and until when the earlier keys keep working."""

    credential_id: str
    kid: str
    old_valid_until: datetime


def kid_of(key: dict[str, Any], index: int) -> str:
    """How a key of a set is named: its ``kid``, or ``#<position>`` without one."""
    return str(key.get("kid") or f"#{index}")[:64]


def _keys(client: OAuthClient) -> list[dict[str, Any]]:
    keys = (client.jwks or {}).get("keys")
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


def register(session: Session, *, client: OAuthClient, now: datetime) -> dict[str, ClientKey]:
    """A row for every key of the client's registered set (existing rows are kept)."""
    rows = {
        row.kid: row
        for row in session.scalars(select(ClientKey).where(ClientKey.client_id == client.id))
    }
    for index, key in enumerate(_keys(client)):
        kid = kid_of(key, index)
        if kid not in rows:
            rows[kid] = ClientKey(client_id=client.id, kid=kid, created_at=now)
            session.add(rows[kid])
    session.flush()
    return rows


def _check_jwk(jwk: dict[str, Any], taken: set[str]) -> str:
    if "d" in jwk:
        raise InvalidInput("the key must be public (it has a private 'd')")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 64:
        raise InvalidInput("the key needs a kid of 1 to 64 characters, to tell it from the others")
    if kid in taken:
        raise InvalidInput(f"the client already has a key {kid!r}")
    try:
        jwt.PyJWK(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("not a usable public JWK") from exc
    return kid


def rotate(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subaccount: Subaccount,
    client: OAuthClient,
    jwk: dict[str, Any],
    old_valid_until: datetime | None = None,
) -> RotatedKey:
    """Add ``jwk`` to the client's set; the earlier keys work until ``old_valid_until``."""
    if client.jwks is None:
        raise InvalidInput(
            f"{client.client_id} has no registered JWK set"
            + (
                " (its keys are published at its jwks_uri and rotated there)"
                if client.jwks_uri
                else ""
            )
        )
    now = ctx.clock.now()
    until = check_overlap(now=now, old_valid_until=old_valid_until)
    rows = register(session, client=client, now=now)
    kept = []
    for index, key in enumerate(_keys(client)):
        row = rows[kid_of(key, index)]
        if row.expires_at is not None and as_utc(row.expires_at) <= now:
            session.delete(row)  # ended: it leaves the set
            continue
        if row.expires_at is None or as_utc(row.expires_at) > until:
            row.expires_at = until
        kept.append(key)
    kid = _check_jwk(jwk, {kid_of(k, i) for i, k in enumerate(kept)})
    if len(kept) >= MAX_KEYS:
        raise InvalidInput(f"a client holds at most {MAX_KEYS} keys; wait for old ones to end")
    client.jwks = {"keys": [*kept, dict(jwk)]}  # a new object: the JSON column sees the change
    client.updated_at = now
    session.add(ClientKey(client_id=client.id, kid=kid, created_at=now))
    session.flush()
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.oauth_client_key_rotated,
        target=client.client_id,
        subdomain=subaccount.subdomain,
        after={"kid": kid, "old_valid_until": until},
    )
    return RotatedKey(client_key_id(client.client_id, kid), kid, until)
