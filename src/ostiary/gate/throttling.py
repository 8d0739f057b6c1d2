"""How the authenticators use the throttle (``ostiary.gate.throttle``): which account an
attempt counts against, and when it is counted.

Human-chosen passwords are checked against the throttle before argon2 runs. Machine
credentials (generated secrets, client secrets and assertions, tokens) are verified first
and never refused because of failures on their account; their failures count only against
the client address, to limit load.
"""

from __future__ import annotations

from ostiary.access.snapshot import UserFacts
from ostiary.context import AppContext
from ostiary.gate.keys import Account, Kind, unknown_account
from ostiary.gate.principal import Refusal

#: What a token that names no client counts against: only its address (a machine kind).
NO_CLIENT = Account(Kind.client, "")


def account_of(user: UserFacts | None, identifier: str, *, human: bool) -> Account:
    """The account a Basic attempt is about (user ID and e-mail share one budget); an
    unknown name counts like the kind its syntax says. What decides the policy is the
    secret, not the kind of user: a technical user with a chosen password (a converted
    person, say) is throttled like a person, before argon2 runs."""
    if user is None:
        return unknown_account(identifier)
    return Account(Kind.person if human else Kind(user.kind.value), user.user_id)


def client_account(client_id: str) -> Account:
    """The account of an OAuth client."""
    return Account(Kind.client, client_id)


def count(ctx: AppContext, refusal: Refusal, address: str) -> None:
    """Count a refused authentication once, when the edge finally refuses it; raise
    ``Throttled`` when a machine credential's failure comes from an address over its limit
    (answered 429 instead of 401)."""
    failure = refusal.failure
    if failure is None:
        return
    throttled = ctx.throttle.failed(failure.account or NO_CLIENT, address)
    if throttled is not None:
        raise throttled
