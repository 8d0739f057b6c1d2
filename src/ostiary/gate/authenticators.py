"""The authenticators: each turns one kind of credential into a ``Principal`` or a
``Refusal``, reading only the read model (the grants snapshot), never the request.

- ``password`` — HTTP Basic with a user ID or e-mail and a generated secret (keyed hash,
  microseconds) or a human-chosen password (argon2id, once, then the verified-credential
  cache); a technical user's secrets are several during an overlap rotation, each
  compared, each ending at its own ``expires_at``;
- ``bearer`` — an access token issued by Ostiary (RFC 9068 JWT); a certificate-bound one
  (RFC 8705 §3) only with the client certificate it is bound to;
- ``console_session`` — the console's session cookie;
- ``certificate`` — an X.509 client certificate, pinned or mapped in the flow's
  sub-account (``ostiary.gate.certificate_identity``).

OAuth client authentication at the token endpoint (client secrets, client assertions) is
protocol work and lives in ``ostiary.oauth.client_auth``; it checks a client's validity
through ``ostiary.gate.credentials`` like everything here.

Enumeration: an unknown identifier costs exactly what the kind of identity it would name
costs, decided by its syntax (``T`` and digits: a technical user, checked by keyed hash),
never by a first letter; anything else gets the argon2 dummy verification.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import anyio.to_thread

from ostiary.access.snapshot import GrantSnapshot, SecretFacts, UserFacts
from ostiary.context import AppContext
from ostiary.crypto import constant_time_equals
from ostiary.db import transaction
from ostiary.gate import throttling
from ostiary.gate.certificate_identity import (
    CertificateFailure,
    Identified,
    identify,
)
from ostiary.gate.client_certs import PresentedCertificate
from ostiary.gate.credentials import (
    certificate_user_refusal,
    client_refusal,
    expiry_refusal,
    user_refusal,
)
from ostiary.gate.keys import Account, Kind, technical_id
from ostiary.gate.principal import Failure, Method, Principal, Refusal
from ostiary.identity.models import UserKind
from ostiary.identity.service import KEYED_PREFIX, rehash, verify_keyed
from ostiary.oauth.errors import InvalidToken
from ostiary.oauth.rfc8705_mtls import binding_mismatch

log = logging.getLogger("ostiary.gate")

MAX_IDENTIFIER = 320


def checked_by_keyed_hash(identifier: str, stored: str | None) -> bool:
    """Whether a credential is a generated secret: by its stored hash when the user is
    known, else by the identifier's syntax (so an unknown ``T…`` ID costs what a known one
    costs, and an unknown e-mail what a known person's costs)."""
    if stored is not None:
        return stored.startswith(KEYED_PREFIX)
    return technical_id(identifier)


async def password(
    ctx: AppContext, snapshot: GrantSnapshot, *, identifier: str, secret: str, address: str
) -> Principal | Refusal:
    """HTTP Basic: the active user whose user ID or e-mail and password these are.

    Human-chosen passwords are throttled before argon2 runs (``throttling``); generated
    secrets are verified first and never refused because of anyone else's failures.
    Raises ``Throttled``; every other failure is a ``Refusal`` (401), counted and named.
    """
    user = snapshot.find_user(identifier) if len(identifier) <= MAX_IDENTIFIER else None
    if user is not None and user.kind is UserKind.technical:
        return await _technical(ctx, user, identifier=identifier, secret=secret, address=address)
    stored = user.password_hash if user is not None else None
    if checked_by_keyed_hash(identifier, stored):
        ok = verify_keyed(ctx, stored, secret)
        human = False
    else:
        human = True
        if not ctx.throttle.quiet():  # nothing is counted anywhere: no key to build
            ctx.throttle.check(throttling.account_of(user, identifier, human=True), address)
        key = ctx.verified.key(identifier, secret)
        if stored is not None and ctx.verified.matches(key, stored):
            ok = True
        else:
            ok = await ctx.passwords.averify(stored, secret)
            if ok and stored is not None:
                ctx.verified.remember(key, stored)
                if ctx.passwords.needs_rehash(stored):
                    await anyio.to_thread.run_sync(_rehash, ctx, user, secret)
    refused = (
        Refusal(401, "wrong password", user.user_id)
        if user is not None and not ok
        else user_refusal(user, named=identifier)
    )
    if refused is not None:
        return replace(
            refused, failure=Failure(throttling.account_of(user, identifier, human=human))
        )
    assert user is not None
    return Principal(
        user=user,
        method=Method.basic,
        credential_id=user.password_credential_id,
        password_expired=human
        and user.password_expires_at is not None
        and user.password_expires_at <= ctx.clock.now(),
    )


async def _technical(
    ctx: AppContext, user: UserFacts, *, identifier: str, secret: str, address: str
) -> Principal | Refusal:
    """A technical user's secrets: every generated one compared in constant time (two work
    during an overlap); a converted person's own password (argon2) only when none matched,
    throttled like a person's. A right secret past its ``expires_at`` is refused as expired."""
    digest = ctx.secret_hasher.hash(secret)
    matched: SecretFacts | None = None
    chosen: list[SecretFacts] = []
    for candidate in user.secrets:
        if not candidate.stored.startswith(KEYED_PREFIX):
            chosen.append(candidate)
        elif constant_time_equals(digest, candidate.stored.removeprefix(KEYED_PREFIX)):
            matched = candidate
    human = matched is None and bool(chosen)
    if human:
        if not ctx.throttle.quiet():
            ctx.throttle.check(throttling.account_of(user, identifier, human=True), address)
        key = ctx.verified.key(identifier, secret)
        for candidate in chosen:
            if ctx.verified.matches(key, candidate.stored) or await ctx.passwords.averify(
                candidate.stored, secret
            ):
                ctx.verified.remember(key, candidate.stored)
                matched = candidate
                break
    refused = (
        Refusal(401, "wrong password", user.user_id)
        if matched is None
        else user_refusal(user)
        or expiry_refusal(
            matched.secret_id, matched.expires_at, ctx.clock.now(), user_id=user.user_id
        )
    )
    if refused is not None:
        return replace(
            refused, failure=Failure(throttling.account_of(user, identifier, human=human))
        )
    assert matched is not None
    return Principal(user=user, method=Method.basic, credential_id=matched.secret_id)


def _rehash(ctx: AppContext, user: UserFacts | None, secret: str) -> None:
    """Store a hash with today's argon2 parameters (in its own short write transaction)."""
    if user is None:
        return
    try:
        with transaction(ctx.sessions) as session:
            rehash(session, ctx, user_id=user.user_id, password=secret)
    except Exception:  # the old hash still works; the next sign-in tries again
        log.warning("could not rehash the password of %s", user.user_id, exc_info=True)


def bearer(
    ctx: AppContext,
    snapshot: GrantSnapshot,
    *,
    token: str,
    now: datetime,
    audience: str | None = None,
    certificate: PresentedCertificate | None = None,
) -> Principal | Refusal:
    """An access token issued by Ostiary, checked against the current state: revocation,
    the client (enabled, not expired) and its technical user (active). ``audience`` names
    the tenant a runtime call is for; the admin API accepts a token of any tenant.
    ``certificate`` is the client certificate the request came with: a token bound to one
    (``cnf``) is refused without that very certificate (RFC 8705 §3.2)."""
    try:
        access = ctx.tokens.validate(token, snapshot, now=now, expected_audience=audience)
    except InvalidToken as exc:
        return Refusal(401, f"invalid token: {exc.reason}", failure=Failure(None))
    client = snapshot.clients.get(access.client_id)
    refused = client_refusal(snapshot, client, now, named=access.client_id)
    if refused is None and (client is None or client.user_id != access.subject):
        refused = Refusal(401, "the token's subject is not its client's user", access.subject)
    if refused is None and access.bound_to is not None:
        mismatch = binding_mismatch(access.bound_to, certificate)
        if mismatch is not None:
            refused = Refusal(401, mismatch, access.subject)
    if refused is not None:
        return Refusal(
            401,
            f"token of client {access.client_id}: {refused.reason}",
            access.subject,
            failure=Failure(throttling.client_account(access.client_id)),
            expired_credential=refused.expired_credential,
        )
    user = snapshot.users[access.subject]
    return Principal(
        user=user,
        method=Method.oauth,
        credential_id=access.client_id,
        client_id=access.client_id,
        scope=access.scope,
    )


def console_session(snapshot: GrantSnapshot, user_id: str) -> Principal | Refusal:
    """The user of a live console session (resolved by ``identity.sessions``), if still
    allowed in: active, per the read model. An expired password was found at sign-in and
    marked on the session (``must_change_password``), which the edges enforce."""
    user = snapshot.users.get(user_id)
    refused = user_refusal(user, named=user_id)
    if refused is not None:
        return refused
    assert user is not None
    return Principal(
        user=user,
        method=Method.session,
        credential_id=f"session-{user.user_id}",
    )


def certificate(
    snapshot: GrantSnapshot,
    presented: PresentedCertificate,
    *,
    subdomain: str,
    now: datetime,
) -> Principal | Refusal:
    """A client certificate that names an active technical user in ``subdomain``.

    The principal's ``credential_id`` is the certificate ID; a mapped certificate seen for
    the first time has none yet and carries ``first_use`` instead, which the caller records
    (``trust.record_mapped_use``) before admitting. Failures are machine-credential
    failures: counted against the address only, never locking anyone out."""
    found = identify(snapshot, presented, subdomain=subdomain, at=now)
    if not isinstance(found, Identified):
        expired = None
        if found.failure is CertificateFailure.expired:  # audited as credential:expired
            fingerprint = presented.thumbprint.hex()
            known = snapshot.certificates.certificate(fingerprint, subdomain)
            expired = known.certificate_id if known else f"sha256:{fingerprint[:16]}"
        return Refusal(
            401,
            found.reason,
            found.user_id,
            failure=certificate_failure(found.user_id),
            expired_credential=expired,
        )
    user = snapshot.users.get(found.user_id)
    refused = certificate_user_refusal(user, named=found.user_id)
    if refused is not None:
        named = found.certificate.certificate_id if found.certificate else "the certificate"
        return Refusal(
            401,
            f"{CertificateFailure.user.value}: {named}: {refused.reason}",
            found.user_id,
            failure=certificate_failure(found.user_id),
        )
    assert user is not None
    return Principal(
        user=user,
        method=Method.certificate,
        credential_id=found.certificate.certificate_id if found.certificate else "",
        certificate_first_use=found.first_use,
    )


def presented_refusal(reason: CertificateFailure, detail: str) -> Refusal:
    """A certificate that never reached the authenticator (a header from an untrusted peer,
    or one a trusted proxy sent that does not parse): a machine failure, per address."""
    return Refusal(401, f"{reason.value}: {detail}", failure=certificate_failure(None))


def certificate_failure(user_id: str | None) -> Failure:
    """What a certificate failure counts against: a machine account, so only its address."""
    return Failure(Account(Kind.technical, user_id) if user_id else None)
