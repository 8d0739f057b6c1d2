"""Token revocation, RFC 7009. A client revokes its own access tokens; the answer is 200
whether or not the token was valid (§2.2), so nothing is learned from it. A revoked
``jti`` reaches every worker and node through the grants snapshot within a second."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ostiary.access.snapshot import GrantSnapshot
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.oauth.client_auth import AuthenticatedClient
from ostiary.oauth.models import RevokedToken
from ostiary.oauth.rfc9068_jwt import AccessToken, TokenValidator, presented_token


def to_revoke(
    snapshot: GrantSnapshot,
    validator: TokenValidator,
    *,
    client: AuthenticatedClient,
    form: dict[str, str],
    now: datetime,
) -> AccessToken | None:
    """The token to revoke, if it is a live token of this client."""
    return presented_token(validator, snapshot, form, client_id=client.client.client_id, now=now)


def revoke(session: Session, *, clock: Clock, access: AccessToken) -> None:
    """Record the revocation (idempotent) and audit it."""
    try:
        with session.begin_nested():
            session.add(
                RevokedToken(
                    jti=access.jti,
                    revoked_at=clock.now(),
                    expires_at=datetime.fromtimestamp(access.expires_at, UTC),
                )
            )
    except IntegrityError:
        return
    record(
        session,
        clock=clock,
        actor=access.client_id,
        action=AuditAction.token_revoked,
        target=access.jti,
        subdomain=access.subdomain,
        after={"sub": access.subject},
    )
