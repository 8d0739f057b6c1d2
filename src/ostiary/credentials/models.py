"""Tables of the credentials domain, and the kinds every credential listing speaks of.

A technical user's secrets are rows (not one column on ``users``), so two can work at once
during an overlap rotation, each with its own expiry and last use. OAuth client secrets
and certificates keep their tables in their domains (``oauth``, ``certificates``); the
listing (``credentials.service.listing``) shows all of them the same way.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class CredentialKind(StrEnum):
    """What a credential is (the ``kind`` of every listing entry)."""

    technical_user_secret = "technical_user_secret"
    client_secret = "client_secret"
    client_key = "client_key"
    certificate = "certificate"


class SecretStatus(StrEnum):
    """A technical-user secret's stored state; expiry is decided by ``expires_at``."""

    active = "active"
    revoked = "revoked"


class TechnicalUserSecret(Base):
    """One generated secret of a technical user (HTTP Basic), stored as a keyed hash."""

    __tablename__ = "technical_user_secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    #: How the MPL, the audit trail and the listing name it: ``pwd-<user ID>-<10 hex>``.
    secret_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: ``identity.service.KEYED_PREFIX`` + HMAC, or (a person converted to a technical user
    #: keeps the password it chose) an argon2id hash.
    secret_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[SecretStatus] = mapped_column(
        Enum(
            SecretStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    created_at: Mapped[datetime]
    #: The secret stops working at this time everywhere (``None``: no expiry).
    expires_at: Mapped[datetime | None]
    #: Last successful use and its address (aggregated and flushed, ``runtime.usage``).
    last_used_at: Mapped[datetime | None]
    last_address: Mapped[str | None] = mapped_column(String(64))


class CredentialPolicy(Base):
    """A sub-account's rules for the credentials of its technical users."""

    __tablename__ = "credential_policies"

    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), primary_key=True
    )
    #: Longest validity of a new technical-user secret, in days (``None``: unlimited).
    max_validity_days: Mapped[int | None]
    updated_at: Mapped[datetime]


class ClientKey(Base):
    """Validity and last use of one key of an OAuth client's registered JWK set
    (``private_key_jwt``); the public key itself stays in ``oauth_clients.jwks``."""

    __tablename__ = "oauth_client_keys"
    __table_args__ = (UniqueConstraint("client_id", "kid"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    #: The JWK's ``kid`` (``#<position>`` for a key registered without one).
    kid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    #: Assertions signed with this key are refused from then on (``None``: no end).
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_address: Mapped[str | None] = mapped_column(String(64))
