"""Every credential of every technical user, one shape for all kinds (issue 11 item 1).

``listing`` is what the API (``GET /api/v1/technical-users/{user_id}/credentials``), the
CLI, the console, reminders and findings read. It only reads; the caller owns the
transaction. Rotation lives in ``credentials.rotation``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.clock import as_utc
from ostiary.credentials.models import (
    ClientKey,
    CredentialKind,
    SecretStatus,
    TechnicalUserSecret,
)
from ostiary.credentials.naming import client_key_id, client_secret_id, legacy_secret_id
from ostiary.identity.models import User, UserKind

__all__ = ["CredentialInfo", "CredentialKind", "listing", "status_at"]


@dataclass(frozen=True)
class CredentialInfo:
    """One credential as every listing shows it."""

    credential_id: str
    kind: CredentialKind
    #: The technical user the credential authenticates.
    user_id: str
    #: The sub-account it is bound to (a secret: the user's home sub-account, if any).
    subaccount: str | None
    created_at: datetime
    expires_at: datetime | None
    #: ``active``, ``expired``, ``revoked``, ``disabled`` or ``superseded``.
    status: str
    last_used_at: datetime | None
    last_address: str | None
    #: The OAuth client of a client secret or key.
    client_id: str | None = None
    #: The technical user's owner (a person's user ID), ``None`` when ownerless.
    owner: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON shape of the API and ``--json``."""
        return {
            "credential_id": self.credential_id,
            "kind": self.kind.value,
            "user_id": self.user_id,
            "subaccount": self.subaccount,
            "client_id": self.client_id,
            "owner": self.owner,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "status": self.status,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "last_address": self.last_address,
        }


def status_at(stored: str, expires_at: datetime | None, now: datetime) -> str:
    """A credential's status at ``now``: its stored one, or ``expired`` past its end."""
    if stored == "active" and expires_at is not None and as_utc(expires_at) <= now:
        return "expired"
    return stored


def listing(
    session: Session,
    *,
    now: datetime,
    user: User | None = None,
    expiring_within: timedelta | None = None,
) -> list[CredentialInfo]:
    """Every credential of ``user`` (all technical users for ``None``), by user and ID.

    ``expiring_within``: only credentials still active that expire within that time of
    ``now`` (for reminders and ``ostiary credentials expiring``).
    """
    from ostiary.certificates.models import Certificate
    from ostiary.oauth.models import ClientSecret, ClientStatus, OAuthClient
    from ostiary.tenancy.models import Subaccount

    users = _technical_users(session, user)
    by_id = {u.id: u for u in users}
    owners = _owners(session, users)
    subdomains = {
        sub_id: subdomain
        for sub_id, subdomain in session.execute(select(Subaccount.id, Subaccount.subdomain))
    }
    found: list[CredentialInfo] = []

    def add(
        owner: User,
        credential_id: str,
        kind: CredentialKind,
        subaccount: uuid.UUID | None,
        created_at: datetime,
        expires_at: datetime | None,
        stored: str,
        last_used_at: datetime | None,
        last_address: str | None,
        client_id: str | None = None,
    ) -> None:
        expires = as_utc(expires_at) if expires_at is not None else None
        found.append(
            CredentialInfo(
                credential_id=credential_id,
                kind=kind,
                user_id=owner.user_id,
                subaccount=subdomains.get(subaccount) if subaccount else None,
                created_at=as_utc(created_at),
                expires_at=expires,
                status=status_at(stored, expires, now),
                last_used_at=as_utc(last_used_at) if last_used_at else None,
                last_address=last_address,
                client_id=client_id,
                owner=owners.get(owner.owner_id) if owner.owner_id else None,
            )
        )

    secrets = list(
        session.scalars(select(TechnicalUserSecret).where(TechnicalUserSecret.user_id.in_(by_id)))
    )
    with_rows = {secret.user_id for secret in secrets}
    for holder in users:
        if holder.password_hash and holder.id not in with_rows:
            # Written by the previous release during a rolling upgrade (see migration 0008):
            # it still authenticates, so it is listed under the name the MPL gives it.
            add(
                holder,
                legacy_secret_id(holder.user_id, holder.password_hash),
                CredentialKind.technical_user_secret,
                holder.home_subaccount_id,
                holder.password_changed_at or holder.created_at,
                None,
                "active",
                holder.last_used_at,
                None,
            )
    for secret in secrets:
        holder = by_id[secret.user_id]
        add(
            holder,
            secret.secret_id,
            CredentialKind.technical_user_secret,
            holder.home_subaccount_id,
            secret.created_at,
            secret.expires_at,
            "revoked" if secret.status is SecretStatus.revoked else "active",
            secret.last_used_at,
            secret.last_address,
        )
    clients = list(session.scalars(select(OAuthClient).where(OAuthClient.user_id.in_(by_id))))
    client_secrets: dict[uuid.UUID, list[ClientSecret]] = {}
    for row in session.scalars(
        select(ClientSecret).where(ClientSecret.client_id.in_([c.id for c in clients]))
    ):
        client_secrets.setdefault(row.client_id, []).append(row)
    key_rows = {
        (row.client_id, row.kid): row
        for row in session.scalars(
            select(ClientKey).where(ClientKey.client_id.in_([c.id for c in clients]))
        )
    }
    for client in clients:
        holder = by_id[client.user_id]
        stored = "active" if client.status is ClientStatus.active else "disabled"
        for row in client_secrets.get(client.id, []):
            add(
                holder,
                client_secret_id(client.client_id, row.id),
                CredentialKind.client_secret,
                client.subaccount_id,
                row.created_at,
                _earliest(row.expires_at, client.expires_at),
                stored,
                row.last_used_at,
                row.last_address,
                client.client_id,
            )
        for kid in _keys(client.jwks):
            key = key_rows.get((client.id, kid))
            add(
                holder,
                client_key_id(client.client_id, kid),
                CredentialKind.client_key,
                client.subaccount_id,
                key.created_at if key else client.created_at,
                _earliest(key.expires_at if key else None, client.expires_at),
                stored,
                key.last_used_at if key else client.last_used_at,
                key.last_address if key else None,
                client.client_id,
            )
    for cert in session.scalars(select(Certificate).where(Certificate.user_id.in_(by_id))):
        add(
            by_id[cert.user_id],
            cert.certificate_id,
            CredentialKind.certificate,
            cert.subaccount_id,
            cert.created_at,
            cert.not_after,
            cert.status.value,
            cert.last_used_at,
            cert.last_address,
        )
    if expiring_within is not None:
        horizon = now + expiring_within
        found = [
            c
            for c in found
            if c.status == "active" and c.expires_at is not None and c.expires_at <= horizon
        ]
    found.sort(key=lambda c: (c.user_id, c.kind.value, c.credential_id))
    return found


def _technical_users(session: Session, user: User | None) -> list[User]:
    if user is not None:
        return [user] if user.kind is UserKind.technical else []
    return list(session.scalars(select(User).where(User.kind == UserKind.technical)))


def _owners(session: Session, users: Iterable[User]) -> dict[uuid.UUID, str]:
    ids = {u.owner_id for u in users if u.owner_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.user_id).where(User.id.in_(ids)))
    return {row_id: user_id for row_id, user_id in rows}


def _earliest(*times: datetime | None) -> datetime | None:
    known = [as_utc(t) for t in times if t is not None]
    return min(known) if known else None


def _keys(jwks: dict[str, object] | None) -> list[str]:
    """The key IDs of a registered JWK set (a key without ``kid`` is named by position)."""
    keys = (jwks or {}).get("keys")
    if not isinstance(keys, list):
        return []
    return [
        str(key.get("kid") or f"#{index}")[:64]
        for index, key in enumerate(keys)
        if isinstance(key, dict)
    ]
