"""Whether a credential is still good: the one place every entry point checks it.

Status of the user, state and expiry of an OAuth client, the client's technical user, a
token's revocation and its client: each rule is written here once, so the runtime, the
admin API, the token endpoint and the console cannot drift apart (an expired client's
token was once refused at the runtime and accepted at the admin API).

At its ``expires_at`` a credential stops working everywhere (``expiry_refusal``: a
technical user's secret, an OAuth client's secret, the client itself), refused as
"credential expired" and audited as ``credential:expired``.

A technical user whose owner left keeps working: ownership is flagged in the inventory
(README, *Technical users*), never a reason to stop a production sender.
"""

from __future__ import annotations

from datetime import datetime

from ostiary.access.snapshot import ClientFacts, GrantSnapshot, UserFacts
from ostiary.gate.principal import Refusal
from ostiary.identity.models import UserKind, UserStatus

EXPIRED = "credential expired"


def expiry_refusal(
    credential_id: str, expires_at: datetime | None, now: datetime, *, user_id: str | None
) -> Refusal | None:
    """``None`` while the credential is within its validity; from ``expires_at`` on, the
    refusal every entry point gives (401, "credential expired")."""
    if expires_at is None or expires_at > now:
        return None
    return Refusal(
        401,
        f"{EXPIRED}: {credential_id} ended {expires_at.isoformat(timespec='seconds')}",
        user_id,
        expired_credential=credential_id,
    )


def user_refusal(user: UserFacts | None, *, named: str = "") -> Refusal | None:
    """``None`` if ``user`` exists and is active; otherwise why not (always a 401)."""
    if user is None:
        return Refusal(401, f"unknown user {named[:64]!r}" if named else "unknown user")
    if user.status is not UserStatus.active:
        return Refusal(401, f"user is {user.status.value}", user.user_id)
    return None


def certificate_user_refusal(user: UserFacts | None, *, named: str = "") -> Refusal | None:
    """``None`` if a client certificate's user may act: it exists, is a technical user and is
    active (a certificate only ever authenticates technical users)."""
    refused = user_refusal(user, named=named)
    if refused is not None:
        return refused
    assert user is not None
    if user.kind is not UserKind.technical:
        return Refusal(401, f"{user.user_id} is not a technical user", user.user_id)
    return None


def client_refusal(
    snapshot: GrantSnapshot, client: ClientFacts | None, now: datetime, *, named: str = ""
) -> Refusal | None:
    """``None`` if the OAuth client may act: it exists, is enabled, has not expired, and its
    technical user is active. Otherwise why not (401)."""
    if client is None:
        return Refusal(401, f"unknown client {named[:64]!r}")
    if not client.active:
        return Refusal(401, f"client {client.client_id} is disabled", client.user_id)
    expired = expiry_refusal(client.client_id, client.expires_at, now, user_id=client.user_id)
    if expired is not None:
        return expired
    refused = user_refusal(snapshot.users.get(client.user_id), named=client.user_id)
    if refused is not None:
        return Refusal(
            401, f"technical user of client {client.client_id}: {refused.reason}", client.user_id
        )
    return None
