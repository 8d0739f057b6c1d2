"""Client certificates at the runtime: which one a request presents (precedence), and the
first use of a mapped certificate, recorded by the certificates domain through the
group-committing writer.

Precedence: an ``Authorization`` header decides; a client certificate (direct TLS, or the
trusted proxy's header) is used only when there is none. A sender that presents both a
certificate and a Basic secret or a token is authenticated by the header, exactly as
without the certificate (the bound-token rule of RFC 8705 is the token's own).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.types import Scope

from ostiary.access.snapshot import GrantSnapshot
from ostiary.context import AppContext
from ostiary.gate import authenticators
from ostiary.gate.certificate_identity import CertificateFailure, FirstUse
from ostiary.gate.client_certs import certificate_error, ignored_header, presented
from ostiary.gate.principal import Principal, Refusal
from ostiary.runtime.writer import BatchWriter

log = logging.getLogger("ostiary.runtime")


def certificate_caller(
    snapshot: GrantSnapshot, scope: Scope, *, subdomain: str, now: datetime, address: str
) -> Principal | Refusal | None:
    """The caller named by the request's client certificate, a refusal naming why not
    (also for a certificate header that was not believed or did not parse), or ``None``
    when the request carries no certificate at all."""
    chain = presented(scope)
    if chain is not None:
        return authenticators.certificate(snapshot, chain, subdomain=subdomain, now=now)
    error = certificate_error(scope)
    if error is not None:
        return authenticators.presented_refusal(
            CertificateFailure.unparseable, f"the trusted proxy's certificate header: {error}"
        )
    header = ignored_header(scope)
    if header is not None:
        return authenticators.presented_refusal(
            CertificateFailure.untrusted_peer_header,
            f"{header} from {address}, which is not a trusted proxy (OSTIARY_TRUSTED_PROXIES)"
            " or not the header OSTIARY_CLIENT_CERT_HEADER names",
        )
    return None


def _record(
    session: Session, ctx: AppContext, use: FirstUse, user_id: str, address: str
) -> tuple[str, bool]:
    from ostiary.certificates import trust
    from ostiary.certificates.models import TrustedCA
    from ostiary.identity.models import User
    from ostiary.tenancy.models import Subaccount

    subaccount = session.scalar(select(Subaccount).where(Subaccount.subdomain == use.subdomain))
    trusted = session.scalar(select(TrustedCA).where(TrustedCA.trusted_ca_id == use.trusted_ca_id))
    user = session.scalar(select(User).where(User.user_id == user_id))
    if subaccount is None or trusted is None or user is None:
        return "", False  # removed meanwhile: refuse, the next snapshot knows why
    outcome = trust.record_mapped_use(
        session,
        ctx,
        subaccount=subaccount,
        trusted=trusted,
        user=user,
        leaf=use.leaf,
        address=address,
    )
    return outcome.certificate.certificate_id, outcome.admitted


async def record_first_use(
    ctx: AppContext, writer: BatchWriter, caller: Principal, *, address: str
) -> Principal | Refusal:
    """Record a mapped certificate's first use (``trust.record_mapped_use``); the caller
    with its new certificate ID, or a refusal when the domain found it superseded."""
    use = caller.certificate_first_use
    assert use is not None
    result: list[tuple[str, bool]] = []

    def apply(session: Session) -> None:
        result[:] = [_record(session, ctx, use, caller.user_id, address)]

    for attempt in range(2):  # a first use on another worker at once: the row exists now
        try:
            await writer.write(apply)
            break
        except Exception:
            if attempt:
                raise
            log.info("first use of a mapped certificate raced; recording again", exc_info=True)
    certificate_id, admitted = result[0] if result else ("", False)
    if not certificate_id:
        return Refusal(
            401,
            f"{CertificateFailure.unknown.value}: its trusted CA, rule or user was just removed",
            caller.user_id,
            failure=authenticators.certificate_failure(caller.user_id),
        )
    if not admitted:
        return Refusal(
            401,
            f"{CertificateFailure.superseded.value}: {certificate_id or 'the certificate'} "
            "is older than one already used with the same subject and issuer",
            caller.user_id,
            failure=authenticators.certificate_failure(caller.user_id),
        )
    return Principal(
        user=caller.user,
        method=caller.method,
        credential_id=certificate_id,
    )
