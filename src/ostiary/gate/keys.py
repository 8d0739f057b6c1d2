"""The throttle's typed keys and numbers: accounts, (account, address) pairs, addresses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ostiary.gate.models import ACCOUNT_LENGTH, Kind

__all__ = [
    "Account",
    "Address",
    "Failure",
    "Key",
    "Kind",
    "Limits",
    "Pair",
    "Tally",
    "clean",
    "unknown_account",
]

#: Kinds whose secret a person chose: throttled before verification.
HUMAN = frozenset({Kind.person, Kind.unknown})
#: The syntax of a technical user ID (the directory's ``T`` + at least six digits).
_TECHNICAL_ID = re.compile(r"T[0-9]{6,}", re.ASCII)


def clean(value: str, length: int) -> str:
    """Text every database stores: no NUL, no lone surrogates, at most ``length`` long."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value.replace("\x00", "\ufffd")[:length]


@dataclass(frozen=True, slots=True)
class Account:
    """A typed throttle key: the kind of identity and its ID (user ID, client ID, or the
    normalised identifier that names nobody), sanitised and truncated as it is stored."""

    kind: Kind
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", clean(self.id, ACCOUNT_LENGTH))

    @property
    def human(self) -> bool:
        """Whether a person chose this account's secret (throttled before verification)."""
        return self.kind in HUMAN


def technical_id(identifier: str) -> bool:
    """Whether ``identifier`` has the syntax of a technical user ID (ASCII digits only: a
    ``\\d`` would also take other scripts' digits, which no user ID has)."""
    return _TECHNICAL_ID.fullmatch(identifier.strip().upper()) is not None


def unknown_account(identifier: str) -> Account:
    """The account an identifier that names nobody counts against: a technical user's when
    its syntax is a technical user ID, otherwise ``unknown`` (throttled like a person),
    normalised as the directory looks names up (IDs upper case, e-mails lower case)."""
    name = identifier.strip()
    if technical_id(name):
        return Account(Kind.technical, name.upper())
    return Account(Kind.unknown, name.lower())


@dataclass(frozen=True, slots=True)
class Pair:
    """Failures of one account from one address."""

    account: Account
    address: str


@dataclass(frozen=True, slots=True)
class Address:
    """Failures from one address: of human-chosen passwords, or of machine credentials."""

    human: bool
    address: str


Key = Pair | Account | Address


@dataclass(frozen=True)
class Limits:
    """The throttle's numbers (the policy is in ``ostiary.gate.throttle``)."""

    per_account_address: int = 10
    per_account: int = 100
    per_address: int = 100
    machine_per_address: int = 100
    window: timedelta = timedelta(seconds=900)


@dataclass(slots=True, eq=False)
class Failure:
    """A failure this process counted. ``polled`` once a poll's counts include it;
    ``forgotten`` once cleared (the writer then skips it if it is still queued)."""

    account: Account
    address: str
    at: datetime
    keys: tuple[Key, ...]
    polled: bool = False
    forgotten: bool = False


@dataclass(frozen=True, slots=True)
class Tally:
    """How many failures the whole installation has for a key in the window."""

    count: int
    oldest: datetime
    newest: datetime
