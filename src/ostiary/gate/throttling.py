"""How the authenticators use the throttle: which failures count against what.

Human-chosen passwords are checked against the throttle before argon2 runs. Machine
credentials (generated secrets, client secrets and assertions, tokens) are verified first
and never refused because of failures on their account; their failures count only
against the client address, to limit load.
"""

from __future__ import annotations

from ostiary.access.snapshot import UserFacts
from ostiary.context import AppContext
from ostiary.gate.principal import Refusal


def account_of(user: UserFacts | None, identifier: str) -> str:
    """The account a Basic attempt is about (user ID and e-mail share one budget)."""
    return user.user_id if user is not None else identifier.strip().lower()


def client_account(client_id: str) -> str:
    """The account of an OAuth client."""
    return client_id


def before_human_password(ctx: AppContext, account: str, address: str) -> None:
    """Raise ``Throttled`` if this account may not try a password from this address now."""
    ctx.throttle.check(account=account, address=address)


def count(ctx: AppContext, refusal: Refusal, address: str) -> None:
    """Count a refused authentication once, when the edge finally refuses it."""
    failure = refusal.failure
    if failure is None:
        return
    if failure.human and failure.account is not None:
        ctx.throttle.failed(account=failure.account, address=address)
