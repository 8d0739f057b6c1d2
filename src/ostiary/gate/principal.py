"""Who is calling, and how they proved it: the one principal every entry point gets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ostiary.access.snapshot import UserFacts
from ostiary.gate.keys import Account
from ostiary.identity.models import UserKind

if TYPE_CHECKING:
    from ostiary.gate.certificate_identity import FirstUse


class Method(StrEnum):
    """How a caller authenticated. The value is what the message log records."""

    basic = "basic"  # HTTP Basic: a generated secret or a human-chosen password
    oauth = "oauth"  # a Bearer access token issued by Ostiary
    session = "session"  # the console's session cookie
    certificate = "certificate"  # an X.509 client certificate (direct TLS or a trusted proxy)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the user as the read model knows it, and the credential."""

    user: UserFacts
    method: Method
    #: How the message log and the audit trail name the credential used.
    credential_id: str
    #: The OAuth client a token was issued to (bearer callers only).
    client_id: str | None = None
    #: The roles an access token was narrowed to (``None``: every role the user holds).
    scope: frozenset[str] | None = None
    #: The human-chosen password used here has expired: it must be changed first.
    password_expired: bool = False
    #: A mapped certificate used for the first time: recorded (and perhaps found
    #: superseded) by the certificates domain before the caller is admitted.
    certificate_first_use: FirstUse | None = None

    @property
    def id(self) -> uuid.UUID:
        """The user's internal UUID."""
        return self.user.id

    @property
    def user_id(self) -> str:
        """The user's human-readable ID."""
        return self.user.user_id

    @property
    def kind(self) -> UserKind:
        """Person or technical user."""
        return self.user.kind

    @property
    def is_platform_admin(self) -> bool:
        """Whether the user administers the whole installation."""
        return self.user.is_platform_admin


@dataclass(frozen=True)
class Failure:
    """A failed authentication to count: the account it named (``None``: none). The
    account's kind says which throttle policy applies (``ostiary.gate.throttling``)."""

    account: Account | None


@dataclass(frozen=True)
class Refusal:
    """Why a caller is refused: ``status`` for the caller, ``reason`` for the audit trail.

    ``user_id`` names the identity the attempt was about, when one is known; ``failure``
    is set on failed authentications, which the edge counts once (``throttling.count``)
    when it finally refuses (after the re-check, so a refusal is never counted twice)."""

    status: int
    reason: str
    user_id: str | None = None
    failure: Failure | None = None
    #: The credential that was right but past its ``expires_at`` (audited as
    #: ``credential:expired``, ``ostiary.gate.audit.denial_action``).
    expired_credential: str | None = None
