"""Tables of the gate: failed authentications (the shared throttle) and used assertion IDs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ostiary.db import Base

#: Longest stored account: an e-mail address may be 320 characters (RFC 3696 errata).
ACCOUNT_LENGTH = 320
#: Longest stored client address: an IPv6 address with zone fits easily.
ADDRESS_LENGTH = 64
#: Longest ``jti`` stored as it is; longer ones are stored as their digest (gate/replay.py).
JTI_LENGTH = 128


class Kind(StrEnum):
    """What kind of identity a failed authentication named.

    ``unknown`` is an identifier that names nobody and is not, by its syntax, a technical
    user or client ID (an e-mail nobody registered, a mistyped person's ID): it might be a
    person, so it is throttled exactly like one.
    """

    person = "person"
    technical = "technical"
    client = "client"
    unknown = "unknown"


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class AuthFailure(Base):
    """One failed authentication: which account it named, from which address, when."""

    __tablename__ = "auth_failures"
    __table_args__ = (
        # The throttle's window queries: everything since a time, grouped by account and
        # address (pairs, the per-account ceiling) or by address alone (spraying).
        Index("ix_auth_failures_kind_account_at", "kind", "account", "at"),
        Index("ix_auth_failures_address_at", "address", "at"),
    )

    # BIGINT: failures are deleted after the window, but the sequence never goes back and
    # a flood of failures must not exhaust it. SQLite's rowid is 64 bits already.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[Kind] = mapped_column(
        Enum(Kind, name="authkind", native_enum=False, length=16, values_callable=_values)
    )
    #: The user ID or client ID, or the normalised identifier that names nobody.
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH))
    address: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    at: Mapped[datetime] = mapped_column(index=True)


class AuthFailureClear(Base):
    """An account whose failures were forgotten (after a password reset), and when.

    Deleting the rows is enough for the counts every process reads; this row tells the
    other processes to forget the failures they counted themselves as well.
    """

    __tablename__ = "auth_failure_clears"

    kind: Mapped[Kind] = mapped_column(
        Enum(Kind, name="authkind", native_enum=False, length=16, values_callable=_values),
        primary_key=True,
    )
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)


class AssertionJti(Base):
    """A client assertion's ``jti``, kept until the assertion expires (RFC 7523 §3 item 7:
    unique per issuer, so the same ``jti`` from two clients is two assertions)."""

    __tablename__ = "assertion_jtis"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(JTI_LENGTH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
