"""Tables of OAuth clients, their secrets, the signing keys and revoked tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base


class ClientStatus(StrEnum):
    """Whether a client may get tokens."""

    active = "active"
    disabled = "disabled"


class AuthMethod(StrEnum):
    """How a client authenticates at the token endpoint (RFC 7591 §2 names, RFC 8705 §2)."""

    client_secret_basic = "client_secret_basic"
    client_secret_post = "client_secret_post"
    private_key_jwt = "private_key_jwt"
    tls_client_auth = "tls_client_auth"
    self_signed_tls_client_auth = "self_signed_tls_client_auth"

    @property
    def mutual_tls(self) -> bool:
        """An RFC 8705 method: the client certificate is the credential, there is no secret."""
        return self in MUTUAL_TLS


MUTUAL_TLS = frozenset({AuthMethod.tls_client_auth, AuthMethod.self_signed_tls_client_auth})


class OAuthClient(Base):
    """A client that acts as one technical user in one sub-account."""

    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    subaccount_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subaccounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ClientStatus] = mapped_column(
        Enum(
            ClientStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    #: A public JWK Set for ``private_key_jwt`` (RFC 7523), or ``None``.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    #: ``None``: the secret methods (and ``private_key_jwt`` with a registered key), as
    #: before RFC 8705; an mTLS method means the client has no secret at all.
    token_endpoint_auth_method: Mapped[AuthMethod | None] = mapped_column(
        Enum(
            AuthMethod,
            native_enum=False,
            length=32,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    #: ``tls_client_auth`` (RFC 8705 §2.1.2): the certificate's subject, RFC 4514, normalised.
    tls_client_auth_subject_dn: Mapped[str | None] = mapped_column(Text)
    #: ``self_signed_tls_client_auth`` (§2.2): the pinned certificate and its SHA-256 (hex).
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    certificate_fingerprint: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class ClientSecret(Base):
    """One secret of a client; two may overlap during a rotation."""

    __tablename__ = "oauth_client_secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    #: The secret stops working at this time (set when a rotation retires it).
    expires_at: Mapped[datetime | None]
    #: Last use of this very secret at the token endpoint, and from where (flushed).
    last_used_at: Mapped[datetime | None]
    last_address: Mapped[str | None] = mapped_column(String(64))


class SigningKey(Base):
    """A token signing key; the private key is encrypted with a key derived from the secret."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    #: Tokens are signed with the newest key whose ``signs_from`` has passed.
    signs_from: Mapped[datetime]
    #: Published in JWKS until this time (``None``: while it may still sign).
    published_until: Mapped[datetime | None]


class RevokedToken(Base):
    """An access token revoked before its expiry (RFC 7009)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime]
